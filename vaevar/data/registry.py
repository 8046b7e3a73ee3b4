"""The data-set registry: one DataSet entry per data set (shape, sources, schedules, the paper's FIDs), --quick's settings and the splits."""

from __future__ import annotations

import dataclasses

from vaevar.errors import VaevarError


@dataclasses.dataclass(frozen=True)
class Schedule:
    epochs: int
    learning_rate: float
    halve_every: int  # halve the learning rate every N epochs; 0: never


@dataclasses.dataclass(frozen=True)
class DataSet:
    """Everything the project knows about one data set; adding a data set is one DATASETS entry."""

    shape: tuple  # (H, W, C)
    tfds_name: str  # tensorflow-datasets name
    origin: str  # where tensorflow-datasets downloads it from
    local_names: tuple  # file names looked for inside VAEVAR_DATA_DIR
    stage1: Schedule  # Adam, batch 100
    stage2: Schedule  # the dense VAE
    stage2_width: int
    source: str  # where the schedules come from
    paper_fids: dict = None  # kind -> (plain, renormalized): the paper's table, mean of 10 trainings
    jpeg_quality: int = None  # the authors' preprocessing: a JPEG round trip of lossless sources


DATASETS = {
    "cifar10": DataSet(
        (32, 32, 3),
        "cifar10",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        ("cifar-10-python.tar.gz", "cifar10.npz", "cifar10_jpeg_q75.zip", "cifar10"),
        Schedule(700, 1e-4, 250),
        Schedule(1400, 1e-4, 400),
        2048,
        "the authors' code",
        {"rec": (53.8, 53.5), "gen1": (80.2, 78.6), "gen2": (69.8, 69.4)},
        jpeg_quality=75,
    ),
    "celeba": DataSet(
        (64, 64, 3),
        "celeb_a",
        "https://drive.google.com/",
        ("img_align_celeba.zip", "img_align_celeba", "celeba.npz"),
        Schedule(70, 5e-5, 60),
        Schedule(140, 5e-5, 120),
        4096,
        "the authors' code",
        {"rec": (33.9, 33.7), "gen1": (43.6, 42.7), "gen2": (42.7, 38.6)},
    ),
    "mnist": DataSet(
        (28, 28, 1),
        "mnist",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ("mnist.npz",),
        Schedule(100, 1e-4, 40),
        Schedule(200, 1e-4, 80),
        1024,
        "ours",
    ),
    "fashion_mnist": DataSet(
        (28, 28, 1),
        "fashion_mnist",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ("fashion_mnist.npz", "fashion-mnist.npz"),
        Schedule(100, 1e-4, 40),
        Schedule(200, 1e-4, 80),
        1024,
        "ours",
    ),
    # A folder of the user's own images (FolderSplit); dataset("images", side) gives its shape and the
    # settings of the authors' nearest size.
    "images": DataSet(
        None,
        None,
        None,
        (),
        Schedule(700, 1e-4, 250),
        Schedule(1400, 1e-4, 400),
        2048,
        "the authors' CIFAR-10 settings up to 32 px, their CelebA settings from 64 px",
    ),
}


IMAGES = "images"
IMAGE_SIZES = (16, 32, 64, 128, 256)  # --dataset images --image-size: the powers of two the network takes
DEFAULT_IMAGE_SIZE = 64  # CelebA's


# --quick: a CPU smoke run of the whole pipeline (minutes, not days); 10 epochs is
# about where the balanced loss has shrunk gamma enough for the latents to activate.
QUICK_SETTINGS = {
    "epochs": 10,
    "learning_rate": 1e-3,
    "halve_every": 0,
    "stage2_epochs": 20,
    "stage2_halve_every": 0,
    "stage2_width": 256,
    "base_filters": 16,
    "limit": 10000,
    # samples per kind (generate.py), per FID side (compute_fid.py), analysed (variance_analysis.py)
    "samples": 1000,
    "fid_samples": 500,
    "analysis_samples": 500,
}


def dataset(name: str, image_size: int | None = None) -> DataSet:
    """The registry entry of `name`, or a one-line error naming the choices. For "images" with an
    image_size: shape (S, S, None) (the channels are the images': 1 when all are grayscale, else 3), and the
    schedules and stage-2 width of the authors' nearest size (CIFAR-10's up to 32 px, CelebA's from 64)."""
    if name not in DATASETS:
        raise VaevarError(f"unknown data set '{name}': choose one of {', '.join(DATASETS)}")
    if name != IMAGES or image_size is None:
        return DATASETS[name]
    nearest = DATASETS["cifar10" if image_size <= 32 else "celeba"]
    return dataclasses.replace(
        DATASETS[IMAGES],
        shape=(image_size, image_size, None),
        stage1=nearest.stage1,
        stage2=nearest.stage2,
        stage2_width=nearest.stage2_width,
    )


def training_defaults(
    name: str, quick: bool = False, image_size: int | None = None
) -> dict[str, int | float | None]:
    """Flat defaults for the training scripts: the data set's schedules, or --quick's."""
    entry = dataset(name, image_size)
    defaults = {
        "epochs": entry.stage1.epochs,
        "learning_rate": entry.stage1.learning_rate,
        "halve_every": entry.stage1.halve_every,
        "stage2_epochs": entry.stage2.epochs,
        "stage2_learning_rate": entry.stage2.learning_rate,
        "stage2_halve_every": entry.stage2.halve_every,
        "stage2_width": entry.stage2_width,
        "base_filters": 32,
        "limit": None,
    }
    if quick:
        defaults.update(QUICK_SETTINGS, stage2_learning_rate=QUICK_SETTINGS["learning_rate"])
    return defaults


SPLITS = ("train", "test")
EVALUATION_SEED = 0  # fixes the evaluation set: generate.py's REC inputs are compute_fid.py's reference


def builtin_dataset(name: str) -> DataSet:
    """dataset(name) for tools that need a fixed shape: the built-in data sets only."""
    if name == IMAGES:
        builtins = ", ".join(n for n in DATASETS if n != IMAGES)
        raise VaevarError(
            f"this tool takes a built-in data set ({builtins}), not images: train a run on those"
        )
    return dataset(name)
