"""First stage: the ResNet VAE of the authors' code (asperti/BalancingVAE), Keras 3.

Encoder: 3x3 conv (32) -> per scale a residual block, with a stride-2 3x3
conv doubling the width between scales, halving the map
while its side is above 8 and even: 3 scales for 28/32 px, 4 for 64 px (the
authors' two sizes, both ending at 8x8); the same rule gives 2 for 16 px,
5 for 128 and 6 for 256 -> global average pooling -> dense residual block (512, no batch norm) ->
Dense mu, Dense log-sigma.
Decoder: Dense to a 2x2 map (7x7 for 28 px) whose width is 32 * 2^(halvings
from full size), capped at 1024; per step a stride-2 3x3 transposed conv
halving the width (models/transposed_conv.py: Keras' layer, its kernel gradient in the form GPUs run fast)
and a residual block; a 3x3 conv straight to the sigmoid.
32x32x3 has 5,190,467 trainable parameters, 64x64x3 19,321,667, as theirs.
"""

from collections.abc import Sequence

import keras
from keras import layers

from models.batch_norm import DebiasedBatchNormalization
from models.transposed_conv import ExactConv2DTranspose
from models.vae import VAE

DENSE_WIDTH = 512
MAX_WIDTH = 1024
# The authors' (TF1) batch norm: decay 0.999, epsilon 1e-5, scale and offset, zero-debiased moving statistics.
BN_MOMENTUM, BN_EPSILON = 0.999, 1e-5
# True: the encoder's stride-2 convs pad their input explicitly (a row and a column after: TensorFlow's
# "same" for even sides) and convolve "valid", the same arithmetic; XLA may fuse the pad into the op before
# it (bench/fast_variants.py's explicit_pad). Read when a model is built; the weights are the same.
EXPLICIT_STRIDE_PAD = False


def batch_norm(name: str) -> DebiasedBatchNormalization:
    return DebiasedBatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def residual_block(h: keras.KerasTensor, channels: int, name: str) -> keras.KerasTensor:
    """[BN, ReLU, 3x3 conv] twice, plus a 3x3 conv shortcut of the input; no activation after the sum."""
    shortcut = layers.Conv2D(channels, 3, padding="same", name=f"{name}_shortcut")(h)
    for i in range(2):
        h = batch_norm(f"{name}_bn{i}")(h)
        h = layers.ReLU(name=f"{name}_relu{i}")(h)
        h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv{i}")(h)
    return layers.Add(name=f"{name}_add")([h, shortcut])


def dense_residual_block(h: keras.KerasTensor, width: int, name: str) -> keras.KerasTensor:
    """[ReLU, Dense] twice, plus a Dense shortcut: no batch norm here in their code."""
    shortcut = layers.Dense(width, name=f"{name}_shortcut")(h)
    for i in range(2):
        h = layers.ReLU(name=f"{name}_relu{i}")(h)
        h = layers.Dense(width, name=f"{name}_dense{i}")(h)
    return layers.Add(name=f"{name}_add")([h, shortcut])


def num_scales(size: int) -> int:
    """Encoder scales: halve the map while its side is above 8 and even (the authors' 32 px: 3, 64 px: 4)."""
    scales = 1
    while size > 8 and size % 2 == 0:
        size //= 2
        scales += 1
    return scales


def decoder_start(size: int) -> int:
    """Smallest map the decoder starts from: halve while even and > 2."""
    start = size
    while start % 2 == 0 and start > 2:
        start //= 2
    return start


def kl_weight_for(image_side: int, latent_dim: int) -> float:
    """The authors' first-stage KL weight k = (2 * side / latent_dim)^2: 1 for CIFAR-10, 4 for CelebA; the same
    formula elsewhere (latent 64: 0.25 at 16 px, 16 at 128, 64 at 256), so k keeps growing with the pixel count
    as the reconstruction term does."""
    return (2.0 * image_side / latent_dim) ** 2


def build_encoder(
    image_shape: tuple[int, int, int], latent_dim: int = 64, base_filters: int = 32
) -> keras.Model:
    inputs = keras.Input(image_shape, name="image")
    h = layers.Conv2D(base_filters, 3, padding="same", name="enc_in")(inputs)
    channels = base_filters
    scales = num_scales(image_shape[0])
    for s in range(scales):
        h = residual_block(h, channels, f"enc_scale{s}")
        if s < scales - 1:
            channels *= 2
            if EXPLICIT_STRIDE_PAD:
                h = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"enc_pad{s}")(h)
            padding = "valid" if EXPLICIT_STRIDE_PAD else "same"
            h = layers.Conv2D(channels, 3, strides=2, padding=padding, name=f"enc_down{s}")(h)
    h = layers.GlobalAveragePooling2D(name="enc_pool")(h)
    h = dense_residual_block(h, DENSE_WIDTH, "enc_dense")
    mu = layers.Dense(latent_dim, dtype="float32", name="mu")(h)
    log_sigma = layers.Dense(latent_dim, dtype="float32", name="log_sigma")(h)
    return keras.Model(inputs, [mu, log_sigma], name="encoder")


def build_decoder(
    image_shape: tuple[int, int, int], latent_dim: int = 64, base_filters: int = 32
) -> keras.Model:
    size, _, out_channels = image_shape
    start = decoder_start(size)
    steps = 0
    while start * 2**steps < size:
        steps += 1
    if start * 2**steps != size or image_shape[0] != image_shape[1]:
        raise ValueError(f"unsupported image shape {image_shape}: need square sides of 2^k * start")

    def width(halvings):  # base at full size, doubling as the scale halves
        return min(base_filters * 2**halvings, MAX_WIDTH)

    inputs = keras.Input((latent_dim,), name="z")
    channels = width(steps)
    h = layers.Dense(start * start * channels, name="dec_in")(inputs)
    h = layers.Reshape((start, start, channels), name="dec_reshape")(h)
    for s in range(steps):
        channels = width(steps - 1 - s)
        h = ExactConv2DTranspose(channels, 3, strides=2, padding="same", name=f"dec_up{s}")(h)
        h = residual_block(h, channels, f"dec_scale{s}")
    if steps == 0:
        h = residual_block(h, channels, "dec_scale0")
    outputs = layers.Conv2D(
        out_channels, 3, padding="same", activation="sigmoid", dtype="float32", name="x_hat"
    )(h)
    return keras.Model(inputs, outputs, name="decoder")


def build_first_stage(
    image_shape: Sequence[int],
    latent_dim: int = 64,
    base_filters: int = 32,
    gamma_mode: str = "balanced",
    seed: int = 0,
    kl_weight: float | None = None,
) -> VAE:
    """kl_weight None: the authors' (2 * side / latent_dim)^2."""
    image_shape = tuple(int(s) for s in image_shape)
    if kl_weight is None:
        kl_weight = kl_weight_for(image_shape[0], latent_dim)
    model = VAE(
        build_encoder(image_shape, latent_dim, base_filters),
        build_decoder(image_shape, latent_dim, base_filters),
        gamma_mode=gamma_mode,
        seed=seed,
        kl_weight=kl_weight,
        name="first_stage",
    )
    model.build((None,) + image_shape)
    return model
