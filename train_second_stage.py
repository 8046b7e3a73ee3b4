"""Stage 2: train the dense VAE on the first stage's latent codes and save it.

    python train_second_stage.py --dataset cifar10

Reads RUN_DIR/stage1/first_stage.keras, encodes the training set once,
resamples z ~ N(mu, sigma) every epoch. Outputs in RUN_DIR/stage2/:
second_stage.keras, latents.npz (train mu and sigma), latent_stats.json
(per-dimension std of mu and of sampled z, the variance law), log.csv,
checkpoint.keras/.json. Rerunning resumes. With --latent-fd-every N, every
Nth row of log.csv also holds the mismatch the paper blames: the Frechet
distance between GEN-2's codes (plain, renormalized) and encoded test codes.
With --stage1-epoch E it learns the first stage kept after epoch E
(train_first_stage.py --keep-models-at) instead, into RUN_DIR/stage2_stage1_epoch_<E>/:
a second stage belongs to the first stage whose codes it learned.
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import os

import numpy as np

from vaevar import cli, data, errors, files, kept_models, layout
from vaevar.runtime import RuntimeSettings
from vaevar.variance_measures import latent_statistics

DATASET = "cifar10"  # the data set the first stage was trained on
DATA_PATH = None  # local data file; default the first stage's (else VAEVAR_DATA_DIR, else tfds)
RUN_DIR = None  # default: runs/<dataset>
EPOCHS = None  # default: the authors' (CIFAR-10 1400, CelebA 140)
BATCH_SIZE = 100  # the authors' 100
LEARNING_RATE = None  # default: the first stage's (1e-4 CIFAR-10, 5e-5 CelebA)
HALVE_EVERY = None  # halve the learning rate every N epochs (0: never); CIFAR-10 400, CelebA 120
WIDTH = None  # dense width; default the authors' code: 2048 CIFAR-10, 4096 CelebA (ours: 1024 MNIST)
GAMMA_MODE = "balanced"  # balanced (Asperti & Trentin) | learned (Dai & Wipf's log-gamma)
JPEG_ROUND_TRIP = True  # CIFAR-10 from a lossless source: JPEG quality 75 and back, as the authors' data
LIMIT = None  # encode only N training images
SEED = 0  # weights, batch order and latent resampling
LATENT_FD_EVERY = 0  # every N epochs log.csv gets GEN-2's latent Frechet distance to test codes; 0: never
LATENT_FD_SAMPLES = 10000  # test images encoded, and GEN-2 codes drawn, for that measure
KEEP_MODELS_AT = ""  # comma-separated epochs after which a copy is kept: stage2/kept/epoch_<E>.keras
STAGE1_EPOCH = 0  # learn the first stage kept after epoch E (its --keep-models-at): stage2_stage1_epoch_<E>/
QUICK = False  # small CPU setting: 20 epochs, width 256
RUNTIME = RuntimeSettings()  # how it runs: trainer, precision, XLA, checkpoints, time budget, CPU guard


def resolve_settings(args):
    args.run_dir = layout.RunPaths.of(args.dataset, args.run_dir).root
    recorded_path, args.folder = data.recorded_source(args.run_dir)  # --dataset images: stage 1's split
    args.data_path = args.data_path or recorded_path
    paper = data.training_defaults(args.dataset, args.quick, args.folder and args.folder.image_size)
    defaults = {
        "epochs": paper["stage2_epochs"],
        "learning_rate": paper["stage2_learning_rate"],
        "halve_every": paper["stage2_halve_every"],
        "width": paper["stage2_width"],
        "limit": paper["limit"],
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    cli.require_positive(
        args,
        "epochs",
        "batch_size",
        "learning_rate",
        "width",
        "limit",
        "halve_every",
        "latent_fd_every",
        "latent_fd_samples",
        "stage1_epoch",
        allow_zero=("halve_every", "latent_fd_every", "stage1_epoch"),
    )
    args.runtime = cli.settings_from(args, RuntimeSettings)  # checked: a bad value stops here
    args.keep_models_at = kept_models.kept_epochs(args.keep_models_at)
    return args


_LATENT_FD_FIELDS = ("latent_fd_gen2", "latent_fd_gen2_renorm", "variance_ratio")


def latent_mismatch(first, args, mu, sigma):
    """run_folder.EpochMeasure of the paper's mismatch over training: the Frechet distance between the encoded
    test codes z = mu + sigma * eps and the second stage's GEN-2 codes, plain and renormalized as the authors
    do (per batch of 100, gate ignored), and the gate's variance-loss ratio. Fixed noise: epochs compare."""
    from vaevar.renormalization import latent_target, renormalize_batches, second_stage_variance_ratio
    from vaevar.run_folder import EpochMeasure
    from vaevar.training import decode, encode
    from vaevar.variance_measures import latent_frechet_distances

    test = data.load_evaluation(
        args.dataset, args.data_path, args.latent_fd_samples, "test", args.jpeg_round_trip, args.folder
    )
    test_mu, test_sigma = encode(first, test)
    rng = np.random.default_rng(args.seed)
    z_test = test_mu + test_sigma * rng.standard_normal(test_mu.shape).astype(np.float32)
    u = rng.standard_normal(test_mu.shape).astype(np.float32)
    target = latent_target(mu, sigma, "authors")

    def measure(second, epoch):
        codes = decode(second, u)
        distances = latent_frechet_distances(
            z_test, {"plain": codes, "renorm": renormalize_batches(codes, target)[0]}
        )
        return {
            "latent_fd_gen2": distances["plain"],
            "latent_fd_gen2_renorm": distances["renorm"],
            "variance_ratio": second_stage_variance_ratio(second, mu, args.seed),
        }

    return EpochMeasure(_LATENT_FD_FIELDS, args.latent_fd_every, measure)


def epoch_measure(first, args, mu, sigma):
    """The run's run_folder.EpochMeasure: --latent-fd-every's columns and --keep-models-at's copies, or None."""
    mismatch = latent_mismatch(first, args, mu, sigma) if args.latent_fd_every else None
    stage = layout.RunPaths(args.run_dir, stage1_epoch=args.stage1_epoch).stage2
    return kept_models.keep_copies(stage, args.keep_models_at, mismatch)


def main(argv=None):
    args = resolve_settings(cli.parse_constants(globals(), __doc__, argv))
    backend.set_seed(args.seed)
    from models.second_stage import build_second_stage
    from vaevar import fast_training
    from vaevar.run import Run
    from vaevar.run_folder import check_image_shape, check_second_stage_matches
    from vaevar.training import LatentBatches, TrainingSettings, encode, train_stage

    trainer = fast_training.choose(args.runtime.trainer, args.runtime.checkpoint_every)
    print(backend.runtime_line("fast" if trainer else "fit"), flush=True)
    # the data set checked; a kept first stage's second stage has its own folder (layout.RunPaths)
    first = Run.load(
        args.run_dir, dataset=args.dataset, first_only=True, stage1_epoch=args.stage1_epoch
    ).first
    paths = layout.RunPaths(args.run_dir, stage1_epoch=args.stage1_epoch)
    stage1_digest = files.weights_digest(first)
    check_second_stage_matches(paths.stage2.dir, stage1_digest)
    os.makedirs(paths.stage2.dir, exist_ok=True)
    images = data.load(
        args.dataset, "train", args.data_path, args.limit, args.jpeg_round_trip, folder=args.folder
    )
    check_image_shape(first, images, args.dataset)
    mu, sigma = encode(first, images)
    files.save_npz(paths.latents, mu=mu, sigma=sigma)
    files.save_json(paths.latent_stats, latent_statistics(mu, sigma))
    print(f"stage 2: {len(mu)} latent codes of size {mu.shape[1]}, width {args.width}, {args.epochs} epochs")

    metadata = {
        "dataset": args.dataset,
        "latent_dim": int(mu.shape[1]),
        "width": args.width,
        "gamma_mode": args.gamma_mode,
        "stage1_weights": stage1_digest,
        "trainer": "fast" if trainer else "fit",  # as the first stage's: a resume keeps its trainer
    }

    train_stage(
        cli.settings_from(args, TrainingSettings),
        paths.stage2,
        lambda: build_second_stage(mu.shape[1], args.width, args.gamma_mode, args.seed),
        lambda first_epoch: LatentBatches(mu, sigma, args.batch_size, args.seed, epoch=first_epoch),
        metadata,
        trainer,
        record={name: value for name, value in vars(args).items() if name not in ("folder", "runtime")},
        measure=epoch_measure(first, args, mu, sigma),
    )


if __name__ == "__main__":
    errors.run_main(main)
