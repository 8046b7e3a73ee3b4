"""Data sets as uint8 arrays (N, H, W, C); backend-free (NumPy and Pillow).

Sources, in order of preference:
  1. an explicit local path (--data-path): the CIFAR-10 python tarball, an .npz of uint8 images, a folder of
     the original MNIST / Fashion-MNIST idx files, or a folder / .zip of images (ImageFolder or CelebA
     layout); for --dataset images, any folder or .zip of images (folders.FolderSplit);
  2. VAEVAR_DATA_DIR: a folder holding those files under their usual names;
  3. tensorflow-datasets (downloads; respects TFDS_DATA_DIR).
Pixels become float32 in [0, 1] only batch by batch (to_unit_float), so CelebA fits in memory as uint8.

    registry.py   one DataSet entry per data set, --quick's settings
    loading.py    load(name, split) and the evaluation set
    formats.py    the CIFAR-10 tarball, .npz, MNIST idx
    trees.py      ImageFolder and CelebA trees
    folders.py    your own images: the seeded split recorded in the run
    jpeg.py       the authors' JPEG round trip, cached
    tfds.py       tensorflow-datasets, refused at once offline

The names below are the package's face: what the scripts use.
"""

from vaevar.data.folders import (
    FolderSplit,
    describe_folder,
    folder_metadata,
    folder_split,
    recorded_source,
    requested_split,
    split_names,
    square_resize,
)
from vaevar.data.jpeg import cache_dir
from vaevar.data.loading import load, load_evaluation, sample_array, to_uint8, to_unit_float
from vaevar.data.registry import (
    DATASETS,
    EVALUATION_SEED,
    IMAGES,
    QUICK_SETTINGS,
    SPLITS,
    builtin_dataset,
    dataset,
    training_defaults,
)
from vaevar.data.trees import celeba_crop_resize, load_labeled

__all__ = [
    "DATASETS",
    "EVALUATION_SEED",
    "IMAGES",
    "QUICK_SETTINGS",
    "SPLITS",
    "FolderSplit",
    "builtin_dataset",
    "cache_dir",
    "celeba_crop_resize",
    "dataset",
    "describe_folder",
    "folder_metadata",
    "folder_split",
    "load",
    "load_evaluation",
    "load_labeled",
    "recorded_source",
    "requested_split",
    "split_names",
    "square_resize",
    "sample_array",
    "to_uint8",
    "to_unit_float",
    "training_defaults",
]
