"""The framework a user would pick instead: the authors' stage-1 network and training step in PyTorch, timed.

    python -m bench.torch_reference                                    # CPU: small, eager only
    python -m bench.torch_reference --images 50000 --variants eager,compile,compile_bf16,compile_graphs

The same network as models/first_stage.py (its padding too: TensorFlow's 'same' at stride 2 pads one row
and column after, never before), the balanced loss with gamma's running rule, Adam with the authors'
epsilon, batch 100 on uint8 images held on the device: images/s to put beside bench/fast_variants.py's.
Variants: eager (channels_last), compile (torch.compile), compile_bf16 (and bfloat16 autocast),
compile_graphs (torch.compile's CUDA graphs, mode reduce-overhead). float32 matrix products may use TF32,
as JAX's default does on the GPU. A variant that fails is recorded with its error. --check compares
the loss and outputs with the Keras model's on the same weights, batch and noise, on the CPU, and stops.
PyTorch is not a project requirement: this benchmark is optional. Results:
bench/results/torch_reference_<device>.json.
"""

from vaevar import backend

backend.choose()  # first: the network's shape rules come from models/, which imports Keras

import json
import os
import sys
import time

import numpy as np

from vaevar import cli, errors, files

IMAGES = 500  # training images per timed epoch (50000: CIFAR-10's)
EPOCHS = 2  # timed epochs, after one warm-up epoch
BATCH_SIZE = 100
IMAGE_SIZE = 32  # CIFAR-10's side; 64 for CelebA's
LATENT_DIM = 64
BASE_FILTERS = 32
VARIANTS = "eager"  # of eager, compile, compile_bf16, compile_graphs
CHECK = False  # compare with the Keras model on the CPU (needs Keras), then stop
OUTPUT = None  # default bench/results/torch_reference_<device>.json

DENSE_WIDTH, MAX_WIDTH = 512, 1024  # models/first_stage.py's
BN_MOMENTUM, BN_EPSILON = 0.999, 1e-5
ADAM_EPSILON = 1e-8
EMA_DECAY, MSE_FLOOR = 0.99, 1e-6


def build_network(image_side, latent_dim=LATENT_DIM, base_filters=BASE_FILTERS, channels=3, tf_padding=True):
    """The first stage as torch modules named as the Keras layers (so weights copy by name). tf_padding False:
    symmetric padding at stride 2, PyTorch's usual port (a different network: the check must tell them apart)."""
    import torch
    from torch import nn
    from torch.nn import functional

    from models.first_stage import decoder_start, num_scales

    class SamePadStride2(nn.Module):
        """A stride-2 3x3 conv with TensorFlow's 'same' padding: none before, one row and column after."""

        def __init__(self, cin, cout):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=0 if tf_padding else 1)

        def forward(self, h):
            return self.conv(functional.pad(h, (0, 1, 0, 1)) if tf_padding else h)

    class UpStride2(nn.Module):
        """Keras' Conv2DTranspose(3, strides=2, 'same'): the full transposed conv, its last row and column cut."""

        def __init__(self, cin, cout):
            super().__init__()
            self.conv = nn.ConvTranspose2d(
                cin, cout, 3, stride=2, padding=0 if tf_padding else 1, output_padding=0 if tf_padding else 1
            )

        def forward(self, h):
            h = self.conv(h)
            return h[:, :, :-1, :-1] if tf_padding else h

    layers = nn.ModuleDict()

    def residual(h_channels, cout, name):
        layers[f"{name}_shortcut"] = nn.Conv2d(h_channels, cout, 3, padding=1)
        cin = h_channels
        for i in range(2):
            layers[f"{name}_bn{i}"] = nn.BatchNorm2d(cin, eps=BN_EPSILON, momentum=1 - BN_MOMENTUM)
            layers[f"{name}_conv{i}"] = nn.Conv2d(cin, cout, 3, padding=1)
            cin = cout

    def run_residual(h, name):
        shortcut = layers[f"{name}_shortcut"](h)
        for i in range(2):
            h = layers[f"{name}_conv{i}"](torch.relu(layers[f"{name}_bn{i}"](h)))
        return h + shortcut

    def dense_residual(width_in, width, name):
        layers[f"{name}_shortcut"] = nn.Linear(width_in, width)
        layers[f"{name}_dense0"] = nn.Linear(width_in, width)
        layers[f"{name}_dense1"] = nn.Linear(width, width)

    def run_dense_residual(h, name):
        shortcut = layers[f"{name}_shortcut"](h)
        h = layers[f"{name}_dense1"](torch.relu(layers[f"{name}_dense0"](torch.relu(h))))
        return h + shortcut

    scales = num_scales(image_side)
    layers["enc_in"] = nn.Conv2d(channels, base_filters, 3, padding=1)
    width = base_filters
    for s in range(scales):
        residual(width, width, f"enc_scale{s}")
        if s < scales - 1:
            layers[f"enc_down{s}"] = SamePadStride2(width, width * 2)
            width *= 2
    dense_residual(width, DENSE_WIDTH, "enc_dense")
    layers["mu"] = nn.Linear(DENSE_WIDTH, latent_dim)
    layers["log_sigma"] = nn.Linear(DENSE_WIDTH, latent_dim)
    start = decoder_start(image_side)
    steps = 0
    while start * 2**steps < image_side:
        steps += 1
    widths = [min(base_filters * 2**halvings, MAX_WIDTH) for halvings in range(steps + 1)]
    layers["dec_in"] = nn.Linear(latent_dim, start * start * widths[steps])
    for s in range(steps):
        layers[f"dec_up{s}"] = UpStride2(widths[steps - s], widths[steps - 1 - s])
        residual(widths[steps - 1 - s], widths[steps - 1 - s], f"dec_scale{s}")
    if steps == 0:  # a side with no halving (e.g. 7 or 28's 7x7 start): one block at the start's width
        residual(widths[0], widths[0], "dec_scale0")
    layers["x_hat"] = nn.Conv2d(widths[0], channels, 3, padding=1)

    class FirstStage(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = layers
            self.register_buffer("mse_ema", torch.ones(()))

        def encode(self, x):
            h = layers["enc_in"](x)
            for s in range(scales):
                h = run_residual(h, f"enc_scale{s}")
                if s < scales - 1:
                    h = layers[f"enc_down{s}"](h)
            h = run_dense_residual(h.mean(dim=(2, 3)), "enc_dense")
            return layers["mu"](h).float(), layers["log_sigma"](h).float()

        def decode(self, z):
            h = layers["dec_in"](z)
            # Keras reshapes a (start, start, width) map, channels last
            h = h.reshape(len(z), start, start, widths[steps]).permute(0, 3, 1, 2)
            for s in range(steps):
                h = run_residual(layers[f"dec_up{s}"](h), f"dec_scale{s}")
            if steps == 0:
                h = run_residual(h, "dec_scale0")
            return torch.sigmoid(layers["x_hat"](h).float())

        def forward(self, x, noise):
            """The balanced loss of models/vae.py at training time, and what it was computed from."""
            mu, log_sigma = self.encode(x)
            x_hat = self.decode(mu + torch.exp(log_sigma) * noise)
            dims = x[0].numel()
            squared_error = torch.square(x.float() - x_hat).sum(dim=(1, 2, 3))
            gamma2 = torch.clamp(self.mse_ema, min=MSE_FLOOR)
            kl = 0.5 * (torch.square(mu) + torch.exp(2 * log_sigma) - 2 * log_sigma - 1).sum(dim=-1)
            kl_weight = (2.0 * image_side / latent_dim) ** 2
            loss = (squared_error / (2 * gamma2) + dims * 0.5 * torch.log(gamma2) + kl_weight * kl).mean()
            batch_mse = squared_error.mean().detach() / dims
            moved = EMA_DECAY * self.mse_ema + (1 - EMA_DECAY) * batch_mse
            with torch.no_grad():
                self.mse_ema.copy_(torch.clamp(torch.minimum(self.mse_ema, moved), min=MSE_FLOOR))
            return loss, x_hat, mu, log_sigma

    return FirstStage()


def copy_keras_weights(network, keras_model):
    """The Keras first stage's weights into the torch network, layer by layer (same names)."""
    import torch

    for part in (keras_model.encoder, keras_model.decoder):
        for layer in part.layers:
            values = [np.asarray(w) for w in layer.get_weights()]
            if not values:
                continue
            module = network.layers[layer.name]
            module = getattr(module, "conv", module)
            kind = type(layer).__name__
            if kind == "Conv2D":  # (h, w, in, out) -> (out, in, h, w)
                tensors = [values[0].transpose(3, 2, 0, 1), values[1]]
            elif kind == "Conv2DTranspose":  # (h, w, out, in) -> (in, out, h, w)
                tensors = [values[0].transpose(3, 2, 0, 1), values[1]]
            elif kind == "Dense":
                tensors = [values[0].T, values[1]]
            else:  # the batch norms: gamma, beta, moving mean and variance (+ debiasing state, not used here)
                tensors = values[:2]
                module.running_mean.copy_(torch.from_numpy(values[2]))
                module.running_var.copy_(torch.from_numpy(values[3]))
            module.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(tensors[0])))
            module.bias.data.copy_(torch.from_numpy(np.ascontiguousarray(tensors[1])))


def compare_with_keras(batch=4, seed=0):
    """On the CPU: the Keras first stage and the torch network with its weights, on one batch and one noise
    draw, in training mode (batch statistics). Returns each output's largest difference, the same for Keras'
    own outputs with its weights nudged by one rounding (the rounding reference, as tests/conftest.py's), and
    for the torch network with PyTorch's symmetric stride-2 padding."""
    import keras
    import torch

    from models.first_stage import build_first_stage

    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    model = build_first_stage((IMAGE_SIZE, IMAGE_SIZE, 3), LATENT_DIM, BASE_FILTERS)
    x = rng.integers(0, 256, (batch, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32) / 255
    noise = rng.normal(size=(batch, LATENT_DIM)).astype(np.float32)

    def keras_outputs():
        mu, log_sigma = model.encoder(x, training=True)
        x_hat = model.decoder(mu + keras.ops.exp(log_sigma) * noise, training=True)
        model.mse_ema.assign(1.0)
        loss = model.compute_loss(x, None, (x_hat, mu, log_sigma), training=False)
        return {k: np.asarray(v, np.float64) for k, v in dict(loss=loss, x_hat=x_hat, mu=mu).items()}

    def torch_outputs(network):
        network.train()
        loss, x_hat, mu, _ = network(
            torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last),
            torch.from_numpy(noise),
        )
        outputs = dict(loss=loss, x_hat=x_hat.permute(0, 2, 3, 1), mu=mu)
        return {k: v.detach().numpy().astype(np.float64) for k, v in outputs.items()}

    reference = keras_outputs()
    difference = {}
    for name, tf_padding in (("torch", True), ("torch_symmetric_padding", False)):
        network = build_network(IMAGE_SIZE, LATENT_DIM, BASE_FILTERS, tf_padding=tf_padding)
        with torch.no_grad():
            copy_keras_weights(network, model)
        outputs = torch_outputs(network)
        difference[name] = {k: float(np.max(np.abs(outputs[k] - reference[k]))) for k in reference}
    original = model.get_weights()
    difference["rounding"] = {k: 0.0 for k in reference}
    for nudge in range(1, 4):  # each float weight moved by one float32 rounding, of random sign
        signs = np.random.default_rng(nudge)
        model.set_weights(
            [
                (w.astype(np.float64) * (1 + 2.0**-24 * signs.choice([-1, 1], w.shape))).astype(w.dtype)
                if w.dtype == np.float32
                else w
                for w in original
            ]
        )
        nudged = keras_outputs()
        for k in reference:
            difference["rounding"][k] = max(
                difference["rounding"][k], float(np.max(np.abs(nudged[k] - reference[k])))
            )
    model.set_weights(original)
    difference["loss"] = float(reference["loss"])
    return difference


def time_variant(variant, images, args, device):
    """images/s of one variant: one warm-up epoch, then args.epochs timed."""
    import torch

    torch.manual_seed(0)
    network = build_network(args.image_size, args.latent_dim, args.base_filters).to(
        device, memory_format=torch.channels_last
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4, eps=ADAM_EPSILON, fused=device.type == "cuda")
    forward = network
    if variant.startswith("compile"):
        mode = "reduce-overhead" if variant == "compile_graphs" else None
        forward = torch.compile(network, mode=mode)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant == "compile_bf16")
    batches = len(images) // args.batch_size
    latent_dim = args.latent_dim

    def epoch(seed):
        generator = torch.Generator(device=device).manual_seed(seed)
        order = torch.randperm(len(images), device=device, generator=generator)
        for b in range(batches):
            rows = order[b * args.batch_size : (b + 1) * args.batch_size]
            x = images[rows].permute(0, 3, 1, 2).float().div(255)  # NHWC storage: channels_last already
            noise = torch.randn(len(rows), latent_dim, device=device, generator=generator)
            with autocast:
                loss = forward(x, noise)[0]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize()

    started = time.perf_counter()
    epoch(0)
    synchronize()
    warm_up = time.perf_counter() - started
    started = time.perf_counter()
    for e in range(1, args.epochs + 1):
        last_loss = epoch(e)
    synchronize()
    seconds = time.perf_counter() - started
    return {
        "images_per_second": batches * args.batch_size * args.epochs / seconds,
        "seconds_per_epoch": seconds / args.epochs,
        "first_epoch_seconds": warm_up,
        "last_loss": last_loss,
    }


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    try:
        import torch
    except ImportError:
        raise errors.VaevarError(
            "this benchmark needs PyTorch (pip install torch); the project does not"
        ) from None
    if args.check:
        difference = compare_with_keras()
        print(json.dumps(difference, indent=1))
        bound = {k: 10 * v for k, v in difference["rounding"].items()}
        if any(difference["torch"][k] > bound[k] for k in bound):
            raise errors.VaevarError(
                f"the torch network differs from the Keras one beyond rounding: {difference}"
            )
        print("the torch network computes the Keras model's loss and outputs, within 10x its rounding")
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_float32_matmul_precision("high")  # TF32 where the GPU has it, as JAX's default
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    rng = np.random.default_rng(0)
    side = args.image_size
    images = torch.from_numpy(rng.integers(0, 256, (args.images, side, side, 3), dtype=np.uint8)).to(device)
    results = {
        "device": name,
        "torch": torch.__version__,
        "images": args.images,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "variants": {},
    }
    out = args.output or os.path.join(
        os.path.dirname(os.path.abspath(__file__)),
        "results",
        f"torch_reference_{name.replace(' ', '_')}.json",
    )
    for variant in args.variants.split(","):
        if variant not in ("eager", "compile", "compile_bf16", "compile_graphs"):
            raise errors.VaevarError(
                f"unknown variant {variant!r}: use eager, compile, compile_bf16, compile_graphs"
            )
        print(f"{variant}: compiling and timing", flush=True)  # a variant cut short still shows where it was
        try:
            results["variants"][variant] = time_variant(variant, images, args, device)
            print(f"{variant}: {results['variants'][variant]['images_per_second']:.0f} images/s", flush=True)
        except Exception as error:  # a variant that fails is recorded, not fatal
            results["variants"][variant] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
            print(f"{variant}: failed: {results['variants'][variant]['error']}", file=sys.stderr, flush=True)
        files.save_json(out, results)
    print(f"wrote {out}")


if __name__ == "__main__":
    errors.run_main(main)
