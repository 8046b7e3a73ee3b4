"""Stage 1: train the ResNet VAE with the balanced loss and save it.

    python train_first_stage.py --dataset cifar10            # the paper's settings
    python train_first_stage.py --dataset mnist --quick      # CPU smoke run
    python train_first_stage.py --dataset images --data-path DIR --image-size 64   # your own images

Outputs in RUN_DIR/stage1/: first_stage.keras (final model), checkpoint.keras
+ checkpoint.json (resume point), log.csv (loss, mse, gamma, kl per epoch),
kept/epoch_<E>.keras (--keep-models-at: the model after epoch E, which
Run.load(..., stage1_epoch=E) and the later scripts' --stage1-epoch open).
Rerunning the same command resumes an interrupted run. RECALIBRATE_BN (not
in the authors' code) re-estimates the batch-norm statistics of the final
model, for short runs.
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import os

from vaevar import cli, data, errors, files, kept_models, layout
from vaevar.runtime import RuntimeSettings

DATASET = "cifar10"  # cifar10 | celeba | mnist | fashion_mnist | images (your own: a folder or .zip)
DATA_PATH = None  # local tarball / .npz / image folder or .zip (else VAEVAR_DATA_DIR, else tfds)
IMAGE_SIZE = None  # images: the side every image is centre-cropped and resized to (16-256); default 64
TEST_FRACTION = 0.1  # images: the share of the files held out as the test split (seeded: SPLIT_SEED)
SPLIT_SEED = 0  # images: the seed of the train / test split, recorded for every later step
RUN_DIR = None  # default: runs/<dataset>
EPOCHS = None  # default: the paper's (CIFAR-10 700, CelebA 70)
BATCH_SIZE = 100  # the authors' 100
LEARNING_RATE = None  # default: 1e-4 CIFAR-10, 5e-5 CelebA (Adam)
HALVE_EVERY = None  # halve the learning rate every N epochs (0: never); CIFAR-10 250, CelebA 60
KL_WEIGHT = None  # k in k * KL; default the authors' (2 * side / latent_dim)^2: 1 CIFAR-10, 4 CelebA
LATENT_DIM = 64  # the authors' 64
BASE_FILTERS = None  # default 32 (16 with --quick)
GAMMA_MODE = "balanced"  # balanced (Asperti & Trentin) | learned (Dai & Wipf's log-gamma)
JPEG_ROUND_TRIP = True  # CIFAR-10 from a lossless source: JPEG quality 75 and back, as the authors' data
LIMIT = None  # use only N training images (a seeded random subset of a class-folder tree; else the first N)
SEED = 0  # weights, batch order and sampling noise
RECALIBRATE_BN = 0  # after training, re-estimate batch-norm statistics on N images (0: no, as theirs)
KEEP_MODELS_AT = ""  # comma-separated epochs after which a copy is kept (before RECALIBRATE_BN): stage1/kept/
DEBIAS_LEGACY_BN = False  # a first stage saved with Keras' batch norm: zero-debias its statistics
QUICK = False  # small CPU setting: 10 epochs, 10k images, 16 filters
RUNTIME = RuntimeSettings()  # how it runs: trainer, precision, XLA, checkpoints, time budget, CPU guard


def resolve_settings(args):
    """Fill constants left at None from the data set's (or --quick) defaults."""
    args.run_dir = layout.RunPaths.of(args.dataset, args.run_dir).root
    args.data_path = os.path.abspath(args.data_path) if args.data_path else None  # later steps read it
    split = data.requested_split(
        args.dataset, args.image_size, args.test_fraction, args.split_seed, args.run_dir
    )
    args.folder = data.describe_folder(split, args.data_path) if split else None  # None: a built-in data set
    args.image_size = split.image_size if split else None
    defaults = data.training_defaults(args.dataset, args.quick, args.image_size)
    for name in ("epochs", "learning_rate", "halve_every", "base_filters", "limit"):
        if getattr(args, name, None) is None and name in defaults:
            setattr(args, name, defaults[name])
    if args.kl_weight is None:
        from models.first_stage import kl_weight_for

        args.kl_weight = kl_weight_for(data.dataset(args.dataset, args.image_size).shape[0], args.latent_dim)
    cli.require_positive(
        args,
        "kl_weight",
        "epochs",
        "batch_size",
        "learning_rate",
        "latent_dim",
        "base_filters",
        "halve_every",
        "limit",
        "recalibrate_bn",
        allow_zero=("halve_every", "recalibrate_bn"),
    )
    args.runtime = cli.settings_from(args, RuntimeSettings)  # checked: a bad value stops here
    args.keep_models_at = kept_models.kept_epochs(args.keep_models_at)
    return args


def main(argv=None):
    args = resolve_settings(cli.parse_constants(globals(), __doc__, argv))
    backend.set_seed(args.seed)
    import keras

    from models.first_stage import build_first_stage
    from vaevar import fast_training
    from vaevar.run_folder import check_same_settings
    from vaevar.training import ImageBatches, TrainingSettings, recalibrate_batch_norm, train_stage

    trainer = fast_training.choose(args.runtime.trainer, args.runtime.checkpoint_every)
    print(backend.runtime_line("fast" if trainer else "fit"), flush=True)
    stage = layout.RunPaths(args.run_dir).stage1
    metadata = {
        "dataset": args.dataset,
        "latent_dim": args.latent_dim,
        "base_filters": args.base_filters,
        "gamma_mode": args.gamma_mode,
        "kl_weight": args.kl_weight,
        # a resume on the other trainer would go on with another noise generator: not the run it continues
        "trainer": "fast" if trainer else "fit",
    }
    if args.folder is not None:
        metadata.update(data.folder_metadata(args.folder))
    check_same_settings(stage.dir, metadata)  # a resume with other settings: refused before the data load
    # likewise a kept epoch that a resumed run has passed without its copy
    keep = kept_models.keep_copies(stage, args.keep_models_at)
    images = data.load(
        args.dataset, "train", args.data_path, args.limit, args.jpeg_round_trip, folder=args.folder
    )
    if args.folder is not None:  # the test split read once too: a bad file shows now, not at a later step
        data.load(args.dataset, "test", args.data_path, folder=args.folder)
    if len(images) < args.batch_size:
        more = "add images, lower --test-fraction or " if args.folder else ""
        raise errors.VaevarError(
            f"only {len(images)} training images for batch size {args.batch_size}: {more}lower --batch-size"
        )
    print(
        f"stage 1: {args.dataset} {images.shape}, {args.epochs} epochs, lr {args.learning_rate}, "
        f"k {args.kl_weight:.4g}"
    )

    model = train_stage(
        cli.settings_from(args, TrainingSettings),
        stage,
        lambda: build_first_stage(
            images.shape[1:],
            args.latent_dim,
            args.base_filters,
            args.gamma_mode,
            args.seed,
            args.kl_weight,
        ),
        lambda first_epoch: ImageBatches(images, args.batch_size, args.seed, epoch=first_epoch),
        metadata,
        trainer,
        record={name: value for name, value in vars(args).items() if name not in ("folder", "runtime")},
        measure=keep,
    )
    if args.debias_legacy_bn:
        from models.batch_norm import debias_legacy_statistics

        steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        layers = debias_legacy_statistics(model, steps)
        files.save_model(model, stage.model)
        print(f"debiased {layers} batch-norm layers' moving statistics after {steps} steps")
    if args.recalibrate_bn:
        # Short runs: decay 0.999 averages over ~1000 steps, so the moving statistics lag the weights.
        batches = ImageBatches(images, args.batch_size, args.seed, epoch=args.epochs)
        count = min(len(batches), max(1, args.recalibrate_bn // args.batch_size))
        layers = recalibrate_batch_norm(model, (batches[i] for i in range(count)), args.seed)
        files.save_model(model, stage.model)
        print(
            f"re-estimated {layers} batch-norm layers' statistics on {count * args.batch_size} training images"
        )
    if args.debias_legacy_bn or args.recalibrate_bn:  # the completion record names the weights saved last
        files.save_json(
            stage.config, dict(files.load_json(stage.config), weights=files.weights_digest(model))
        )


if __name__ == "__main__":
    errors.run_main(main)
