"""Data sets as uint8 arrays (N, H, W, C); backend-free (NumPy and Pillow).

Sources, in order of preference:
  1. an explicit local path (--data-path): the CIFAR-10 python tarball, an
     .npz of uint8 images, a folder of the original MNIST / Fashion-MNIST
     idx files, or a folder / .zip of images (CelebA layout); for
     --dataset images, any folder or .zip of images (FolderSplit);
  2. VAEVAR_DATA_DIR: a folder holding those files under their usual names;
  3. tensorflow-datasets (downloads; respects TFDS_DATA_DIR).
Pixels become float32 in [0, 1] only batch by batch (see `to_unit_float`),
so CelebA fits in memory as uint8.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import io
import logging
import os
import pickle
import tarfile
import urllib.parse
import zipfile

import numpy as np

import common
import image_files
from common import VaevarError, atomic_path


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


CELEBA_CROP = (45, 173, 25, 153)  # rows 45:173, columns 25:153 (128x128)
CELEBA_SIZE = 64
SPLITS = ("train", "test")


def load(
    name: str,
    split: str,
    data_path: str | None = None,
    limit: int | None = None,
    jpeg_round_trip: bool = True,
    folder: FolderSplit | None = None,
) -> np.ndarray:
    """Return uint8 images (N, H, W, C) of the official `split` ('train'/'test'), or for "images" of
    `folder`'s seeded split of data_path (load_folder).

    A data set with a jpeg_quality (CIFAR-10: the authors wrote every image to
    JPEG quality 75 and read it back) gets that round trip when its source is
    lossless, cached once; a source of JPEG files is used as it is."""
    dataset(name)
    if split not in SPLITS:
        raise VaevarError(f"unknown split '{split}': use 'train' or 'test'")
    if name == IMAGES:
        if folder is None:
            raise VaevarError(
                "data.load('images', ...) needs folder= (a data.FolderSplit; a run's: data.recorded_source)"
            )
        return load_folder(data_path, split, folder, limit)
    path = data_path or _find_local(name)
    if path is not None:
        images = _load_local(name, split, path, limit)
    else:
        images = _load_tfds(name, split, limit)
    if limit is not None:
        images = images[:limit]
    expected = DATASETS[name].shape
    if images.shape[1:] != expected:
        raise VaevarError(
            f"{name} images from {path or 'tensorflow-datasets'} have shape "
            f"{images.shape[1:]}, expected {expected}: check the data set name and file"
        )
    if len(images) == 0:
        raise VaevarError(f"no {split} images found for {name} in {path or 'tensorflow-datasets'}")
    quality = DATASETS[name].jpeg_quality
    if quality and jpeg_round_trip and not (path is not None and _holds_jpeg_files(path)):
        images = cached_jpeg_round_trip(images, quality)
    return images


def jpeg_round_trip(images: np.ndarray, quality: int) -> np.ndarray:
    """Each image written to JPEG (Pillow, 4:2:0 chroma subsampling, as imageio's .jpg) and read back."""
    from PIL import Image

    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            buffer, format="JPEG", quality=quality, subsampling=2
        )
        with Image.open(buffer) as decoded:
            out[i] = np.asarray(decoded).reshape(image.shape)
    return out


def cache_dir() -> str:
    """Where derived data (the JPEG round trip) is cached: $VAEVAR_CACHE_DIR, else ~/.cache/vaevar."""
    return os.environ.get("VAEVAR_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "vaevar")


def cached_jpeg_round_trip(images: np.ndarray, quality: int) -> np.ndarray:
    """jpeg_round_trip, cached under the SHA-256 of the lossless images (a minute for CIFAR-10, once)."""
    key = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:20]
    path = os.path.join(cache_dir(), f"jpeg_q{quality}_{key}.npz")
    if os.path.exists(path):
        try:
            with np.load(path) as stored:
                if stored["images"].shape == images.shape:
                    return stored["images"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache entry is recomputed
    round_tripped = jpeg_round_trip(images, quality)
    with atomic_path(path) as tmp:
        np.savez(tmp, images=round_tripped)
    return round_tripped


def _holds_jpeg_files(path):
    """A folder or .zip of .jpg/.jpeg images: already JPEG'd, never compressed twice."""
    lower = path.lower()
    if lower.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as archive:
                return any(n.lower().endswith((".jpg", ".jpeg")) for n in archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    if os.path.isdir(path):
        return any(f.lower().endswith((".jpg", ".jpeg")) for _, _, files in os.walk(path) for f in files)
    return False


EVALUATION_SEED = 0  # fixes the evaluation set: generate.py's REC inputs are compute_fid.py's reference


def load_evaluation(
    name: str,
    data_path: str | None = None,
    count: int | None = 10000,
    split: str = "test",
    jpeg_round_trip: bool = True,
    folder: FolderSplit | None = None,
) -> np.ndarray:
    """The FID / REC evaluation images: `count` images of `split` drawn at random with a fixed seed
    (all of them when count is None or >= the split's size), so a source's order never matters."""
    images = load(name, split, data_path, jpeg_round_trip=jpeg_round_trip, folder=folder)
    if count is None or count >= len(images):
        return images
    return images[image_files.seeded_subset(len(images), count, EVALUATION_SEED)]


def to_unit_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[0, 1] floats to uint8 with rounding (for saving samples)."""
    return np.clip(np.rint(np.asarray(images, np.float64) * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------- local files


def _find_local(name):
    """VAEVAR_DATA_DIR: the data file itself, or a folder holding it under a usual name."""
    root = os.environ.get("VAEVAR_DATA_DIR")
    if not root:
        return None
    if os.path.isfile(root):
        return root
    for candidate in DATASETS[name].local_names:
        path = os.path.join(root, candidate)
        if os.path.exists(path):
            return path
    return None


def _load_local(name, split, path, limit):
    if not os.path.exists(path):
        raise VaevarError(
            f"data path {path} does not exist: give the CIFAR-10 tarball, an .npz, "
            f"a folder of MNIST idx files or an image folder/.zip"
        )
    lower = path.lower()
    if lower.endswith((".tar.gz", ".tgz", ".tar")):
        return load_cifar10_tarball(path, split)
    if lower.endswith(".npz"):
        return load_npz(path, split)
    if os.path.isdir(path) and name in ("mnist", "fashion_mnist") and (idx := _idx_images_file(path, split)):
        return load_idx_images(idx)
    if lower.endswith(".zip") or os.path.isdir(path):
        return load_image_collection(path, split, celeba=(name == "celeba"), limit=limit)
    raise VaevarError(f"unrecognised data file {path}: expected .tar.gz (CIFAR-10), .npz, .zip or a folder")


class CifarBatchUnpickler(pickle.Unpickler):
    """Only what the official python batches hold: a dict of bytes, lists, ints and NumPy arrays.
    Any other global (os.system, eval, ...) is refused by name before anything runs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"it refers to {module}.{name}, which no CIFAR-10 batch holds; refusing to unpickle it"
            )
        return super().find_class(module, name)


def load_cifar10_tarball(path: str, split: str) -> np.ndarray:
    """The original cifar-10-python.tar.gz: pickled batches of CHW uint8 rows, read with an allow-list."""
    wanted = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    batches = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive.getmembers():
                base = os.path.basename(member.name)
                if base in wanted:
                    raw = CifarBatchUnpickler(archive.extractfile(member), encoding="bytes").load()
                    batches[base] = np.asarray(raw[b"data"], np.uint8)
    except (
        tarfile.TarError,
        EOFError,
        OSError,
        pickle.UnpicklingError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
    ) as error:
        raise VaevarError(
            f"{path} is not a valid CIFAR-10 python tarball ({error}); download it again "
            f"from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
        ) from error
    missing = [w for w in wanted if w not in batches]
    if missing:
        raise VaevarError(
            f"{path} lacks {', '.join(missing)}: it is not a complete CIFAR-10 python "
            f"tarball; download it again"
        )
    rows = np.concatenate([batches[w] for w in wanted])
    if rows.ndim != 2 or rows.shape[1] != 3 * 32 * 32:
        raise VaevarError(
            f"{path}: batches of {rows.shape[1:]} values per image, CIFAR-10 has 3072; download it again"
        )
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


def load_npz(path: str, split: str) -> np.ndarray:
    """An .npz of uint8 images: keys x_train/x_test (Keras layout) or train/test."""
    try:
        with np.load(path) as archive:
            keys = list(archive.keys())
            for key in (f"x_{split}", split, "images" if split == "train" else None):
                if key in keys:
                    images = archive[key]
                    break
            else:
                raise VaevarError(
                    f"{path} has no '{split}' images: expected key x_{split} or {split}, found {keys}"
                )
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise VaevarError(f"cannot read {path} as .npz ({error}): write it with numpy.savez") from error
    if images.dtype != np.uint8:
        raise VaevarError(f"{path}[{split}] has dtype {images.dtype}: store uint8 images in [0, 255]")
    if images.ndim == 3:
        images = images[..., None]
    return images


IDX_IMAGES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}


def _idx_images_file(folder, split):
    """The (M)NIST-format image file of `split` in folder, plain or .gz, or None."""
    for name in (IDX_IMAGES[split], IDX_IMAGES[split] + ".gz"):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


def load_idx_images(path: str) -> np.ndarray:
    """The original MNIST / Fashion-MNIST image files: big-endian IDX, magic 0x00000803 (uint8, 3 dims)."""
    try:
        with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise VaevarError(f"cannot read {path} ({error}): download it again") from error
    if len(raw) < 16 or raw[:4] != b"\x00\x00\x08\x03":
        raise VaevarError(
            f"{path} is not an IDX image file (magic {raw[:4].hex()}, expected 00000803): download it again"
        )
    count, rows, cols = np.frombuffer(raw[4:16], ">u4").astype(int)
    if len(raw) != 16 + count * rows * cols:
        raise VaevarError(
            f"{path} holds {len(raw) - 16} pixel bytes, its header promises {count}x{rows}x{cols}: "
            f"the file is truncated; download it again"
        )
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows, cols, 1).copy()


def _parse_partition(partition_text):
    """Official split: list_eval_partition.txt lines 'file id' (0 train, 1 val, 2 test)."""
    table = {}
    for line in partition_text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            table[parts[0]] = int(parts[1])
    return table


def load_image_collection(path: str, split: str, celeba: bool, limit: int | None = None) -> np.ndarray:
    """Images in a folder or .zip: an ImageFolder tree or the img_align_celeba layout.

    A tree `<split>/<class>/<file>` (optionally under one root folder; the
    layout of the public CIFAR-10 JPEG copy) gives the split from the top
    folder. Otherwise (CelebA only) the split comes from
    list_eval_partition.txt (inside or beside the archive), else the last 10%
    of the sorted names are the test split. CelebA images are cropped and
    resized to 64x64.
    """
    return _read_collection(path, split, celeba, limit)[0]


def load_labeled(path: str, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 images, int labels, class names) of an ImageFolder tree `<split>/<class>/<file>`;
    labels index the sorted class-folder names."""
    images, labels, classes = _read_collection(path, split, celeba=False, limit=limit, need_tree=True)
    return images, labels, classes


def _list_collection(path):
    """(image_files.Listing, the partition text or None) of a folder or .zip."""
    listing = image_files.list_images(path)
    beside = [os.path.join(os.path.dirname(path), "list_eval_partition.txt")]
    if listing.archive is None:
        return listing, _read_partition([os.path.join(path, "list_eval_partition.txt"), *beside])
    inner = [n for n in listing.archive.namelist() if n.endswith("list_eval_partition.txt")]
    return listing, listing.read(inner[0]).decode() if inner else _read_partition(beside)


def _split_tree(names):
    """names -> {split: [(class, name)]} when they form `[root/]<split>/<class>/<file>`, else None."""
    parts = [n.split("/") for n in names]
    offset = (
        1
        if parts and all(len(p) > 1 and p[0] == parts[0][0] for p in parts) and parts[0][0] not in SPLITS
        else 0
    )
    if not any(len(p) > offset and p[offset] in SPLITS for p in parts):
        return None
    tree = {}
    for name, p in zip(names, parts):
        if len(p) != offset + 3 or p[offset] not in SPLITS:
            return {"bad": name}
        tree.setdefault(p[offset], []).append((p[offset + 1], name))
    return tree


def _read_collection(path, split, celeba, limit=None, need_tree=False):
    listing, partition = _list_collection(path)
    names = listing.names
    labels = classes = None
    with listing:
        if not names:
            raise VaevarError(f"no images (.jpg/.png) found in {path}")
        tree = _split_tree(names)
        if tree is not None and "bad" in tree:
            raise VaevarError(
                f"unknown layout in {path}: {tree['bad']} is not <split>/<class>/<file> with "
                f"split train or test; arrange the images as an ImageFolder tree"
            )
        if tree is not None:
            if split not in tree:
                raise VaevarError(
                    f"{path} has no '{split}' split: expected a folder {split}/<class>/ beside "
                    f"{', '.join(sorted(tree))}/"
                )
            classes = sorted({c for entries in tree.values() for c, _ in entries})
            entries = tree[split]
            names = [n for _, n in entries]
            labels = np.array([classes.index(c) for c, _ in entries], np.int64)
        elif need_tree or not celeba:
            raise VaevarError(
                f"unknown layout in {path} (e.g. {names[0]}): expected <split>/<class>/<file> "
                f"with split train or test"
            )
        elif partition is not None:
            table = _parse_partition(partition)
            wanted = {0} if split == "train" else {2}
            names = [n for n in names if table.get(os.path.basename(n), -1) in wanted]
        else:
            cut = int(round(0.9 * len(names)))
            names = names[:cut] if split == "train" else names[cut:]
        if limit is not None and labels is not None and limit < len(names):
            keep = image_files.seeded_subset(len(names), limit, 0)  # a tree is class-sorted
            names, labels = [names[i] for i in keep], labels[keep]
        elif limit is not None:
            names = names[:limit]
        policy = CELEBA_POLICY if celeba else image_files.TRAINING
        images = image_files.decode(listing, names, policy)
    return images, labels, classes


def _read_partition(candidates):
    for candidate in candidates:
        if os.path.exists(candidate):
            with open(candidate) as f:
                return f.read()
    return None


def celeba_crop_resize(image: np.ndarray) -> np.ndarray:
    """Crop [45:173, 25:153] and resize 128 -> 64 with Pillow's BILINEAR, as the authors' loader does
    (Pillow widens the filter when downscaling: each output pixel weighs 4x4 inputs by [1, 3, 3, 1] / 8)."""
    from PIL import Image

    top, bottom, left, right = CELEBA_CROP
    if image.shape[0] < bottom or image.shape[1] < right:
        raise VaevarError(
            f"CelebA image of size {image.shape[:2]} is smaller than the crop "
            f"[45:173, 25:153]: use the aligned 178x218 images"
        )
    crop = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
    return np.asarray(crop.resize((CELEBA_SIZE, CELEBA_SIZE), Image.BILINEAR))


CELEBA_POLICY = image_files.ReadPolicy(rgb=True, transform=celeba_crop_resize)


# --------------------------------------------------------- your own images


@dataclasses.dataclass(frozen=True)
class FolderSplit:
    """--dataset images: how a folder (or .zip) of any images, flat or nested, becomes a data set. Each image
    is centre-cropped to a square and resized to image_size with Pillow; one colour file makes every image
    RGB, an all-grayscale folder stays one channel. The sorted file names are split at random with `seed`:
    a test_fraction for test, the rest for train. Stage 1 records it (folder_metadata); every later step
    reads the same split back (recorded_source)."""

    image_size: int = DEFAULT_IMAGE_SIZE
    test_fraction: float = 0.1
    seed: int = 0
    names_sha256: str | None = None  # stage 1's file names: later steps refuse added or removed ones
    channels: int | None = None  # 1: every file grayscale, else 3; None: read from the folder's headers


def folder_split(image_size: object, test_fraction: float, seed: int) -> FolderSplit:
    """A checked FolderSplit from the flags, or a one-line error saying what to give."""
    if isinstance(image_size, str) and "x" in image_size.lower():
        raise VaevarError(
            f"--image-size {image_size}: images become squares, give one side (one of "
            f"{', '.join(map(str, IMAGE_SIZES))})"
        )
    if image_size not in IMAGE_SIZES:
        raise VaevarError(
            f"--image-size {image_size}: give a power of two the network takes: {', '.join(map(str, IMAGE_SIZES))}"
        )
    if not 0 < test_fraction < 1:
        raise VaevarError(f"--test-fraction {test_fraction}: give a fraction between 0 and 1, such as 0.1")
    return FolderSplit(int(image_size), float(test_fraction), int(seed))


def requested_split(
    name: str, image_size: object, test_fraction: float, seed: int, run_dir: str
) -> FolderSplit | None:
    """The checked split the flags ask for: for "images", at --image-size, else the size run_dir's first stage
    recorded (a resume keeps its size), else DEFAULT_IMAGE_SIZE; None for a built-in data set, which refuses
    --image-size."""
    if name != IMAGES:
        if image_size is not None:
            raise VaevarError(
                f"--image-size is for --dataset images; {name} has its own size ({dataset(name).shape[0]} px)"
            )
        return None
    if image_size is None:
        recorded = recorded_source(run_dir)[1]
        image_size = recorded.image_size if recorded else DEFAULT_IMAGE_SIZE
    return folder_split(image_size, test_fraction, seed)


def names_digest(names: list[str]) -> str:
    """SHA-256 (16 hex digits) of sorted file names: which files a split was made of."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def split_names(names: list[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, test) names: a seeded random test_fraction (at least one) for test, each part in name order."""
    count = len(names)
    test_count = max(1, int(round(test_fraction * count)))
    if test_count >= count:
        raise VaevarError(
            f"{count} images cannot be split into train and test at --test-fraction {test_fraction}: "
            f"add images or lower the fraction"
        )
    test = set(np.random.default_rng(seed).permutation(count)[:test_count].tolist())
    return [n for i, n in enumerate(names) if i not in test], [n for i, n in enumerate(names) if i in test]


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """The centred largest square of an (H, W, C) image, resized to size x size with Pillow's BILINEAR
    (widened when downscaling, as the authors' CelebA loader)."""
    from PIL import Image

    height, width, channels = image.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = np.ascontiguousarray(image[top : top + side, left : left + side])
    if side == size:
        return square
    pixels = Image.fromarray(square[..., 0] if channels == 1 else square)
    return np.asarray(pixels.resize((size, size), Image.BILINEAR)).reshape(size, size, channels)


def _folder_listing(path: str | None) -> image_files.Listing:
    """The image files of --dataset images' folder, or a one-line error saying what to give."""
    if path is None:
        raise VaevarError("--dataset images needs --data-path: a folder or .zip of your images")
    if not os.path.exists(path):
        raise VaevarError(f"data path {path} does not exist: give a folder or .zip of your images")
    listing = image_files.list_images(path)
    if not listing.names:
        listing.close()
        raise VaevarError(
            f"no images ({', '.join(image_files.IMAGE_SUFFIXES)}) in {path}: give a folder or .zip of image files"
        )
    return listing


def describe_folder(folder: FolderSplit, path: str | None) -> FolderSplit:
    """folder with what stage 1 records of the files in path: the names' digest and the channel count."""
    with _folder_listing(path) as listing:
        return dataclasses.replace(
            folder, names_sha256=names_digest(listing.names), channels=_folder_channels(listing)
        )


def _folder_channels(listing: image_files.Listing) -> int:
    """1 when every file is grayscale, else 3: one colour file makes the whole folder RGB."""
    return 1 if image_files.all_grayscale(listing) else 3


def load_folder(path: str | None, split: str, folder: FolderSplit, limit: int | None = None) -> np.ndarray:
    """uint8 (N, S, S, C) images of `split` of a folder or .zip of images (FolderSplit); limit: a seeded
    random subset of the split."""
    with _folder_listing(path) as listing:
        names = listing.names
        if folder.names_sha256 and names_digest(names) != folder.names_sha256:
            raise VaevarError(
                f"the images in {path} ({len(names)} files) are not the ones stage 1 split (files were added, "
                f"removed or renamed): restore that folder or train a new run"
            )
        chosen = split_names(names, folder.test_fraction, folder.seed)[SPLITS.index(split)]
        if limit is not None and limit < len(chosen):
            chosen = [chosen[i] for i in image_files.seeded_subset(len(chosen), limit, 0)]
        channels = folder.channels or _folder_channels(listing)
        policy = image_files.ReadPolicy(
            rgb=channels == 3, transform=functools.partial(square_resize, size=folder.image_size)
        )
        return image_files.decode(listing, chosen, policy)


_FOLDER_KEYS = {  # FolderSplit field -> its key in stage1/checkpoint.json
    "image_size": "image_size",
    "test_fraction": "test_fraction",
    "seed": "split_seed",
    "names_sha256": "names_sha256",
    "channels": "channels",
}


def folder_metadata(folder: FolderSplit) -> dict[str, object]:
    """What stage 1 records of a described FolderSplit in its checkpoint.json; a resume refuses a change."""
    return {key: getattr(folder, field) for field, key in _FOLDER_KEYS.items()}


def recorded_source(run_dir: str) -> tuple[str | None, FolderSplit | None]:
    """What the first stage of run_dir read: its --data-path (None when it gave none, or for a built-in data
    set when that file is gone: the usual search then) and, for --dataset images, its FolderSplit (else None).
    Later steps default to both."""
    stage1 = os.path.join(run_dir, common.STAGE1_DIR)
    state, config = (os.path.join(stage1, name) for name in (common.CHECKPOINT_STATE, common.STAGE_CONFIG))
    recorded = common.load_json(state) if os.path.exists(state) else {}
    data_path = (common.load_json(config) if os.path.exists(config) else {}).get("data_path")
    if recorded.get("dataset") != IMAGES:
        if data_path and not os.path.exists(data_path):
            print(
                f"note: the first stage's data {data_path} is gone; looking for {recorded.get('dataset')} as usual"
            )
            data_path = None
        return data_path, None
    return data_path, FolderSplit(**{field: recorded[key] for field, key in _FOLDER_KEYS.items()})


def builtin_dataset(name: str) -> DataSet:
    """dataset(name) for tools that need a fixed shape: the built-in data sets only."""
    if name == IMAGES:
        builtins = ", ".join(n for n in DATASETS if n != IMAGES)
        raise VaevarError(
            f"this tool takes a built-in data set ({builtins}), not images: train a run on those"
        )
    return dataset(name)


# --------------------------------------------------------- tensorflow-datasets

TFDS_MIRROR = "storage.googleapis.com"  # tensorflow-datasets' own copies of prepared data sets
REACHABLE_TIMEOUT = 5  # seconds: offline, fail at once instead of after tensorflow-datasets' retries


def _reachable(host, port=443, timeout=REACHABLE_TIMEOUT):
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_tfds(name, split, limit):
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise VaevarError(
            "tensorflow-datasets is not installed: pip install -r requirements.txt, "
            "or give a local file with --data-path"
        ) from error
    entry = DATASETS[name]
    origin = urllib.parse.urlparse(entry.origin)
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(
        logging.ERROR
    )  # "Variant folder ... has no dataset_info.json": only means not prepared
    try:
        prepared = tfds.builder(entry.tfds_name).is_prepared()
    except Exception:  # a broken tensorflow-datasets folder: let tfds.load report it
        prepared = False
    finally:
        absl_logger.setLevel(level)
    if not prepared and not any(
        _reachable(host, port)
        for host, port in (
            (TFDS_MIRROR, 443),
            (origin.hostname, origin.port or (443 if origin.scheme == "https" else 80)),
        )
    ):
        raise VaevarError(
            f"{name} is not prepared in tensorflow-datasets' folder and neither {TFDS_MIRROR} nor "
            f"{origin.hostname} is reachable: offline, give a local file with --data-path or set "
            f"VAEVAR_DATA_DIR"
        )
    tfds_split = split if limit is None else f"{split}[:{limit}]"
    try:
        examples = tfds.load(DATASETS[name].tfds_name, split=tfds_split, shuffle_files=False)
    except Exception as error:  # network, missing manual download, ...
        raise VaevarError(
            f"tensorflow-datasets could not provide {name} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); offline, give a local "
            f"file with --data-path or set VAEVAR_DATA_DIR"
        ) from error
    images = [example["image"] for example in tfds.as_numpy(examples)]
    if name == "celeba":
        images = [celeba_crop_resize(image) for image in images]
    return np.stack(images).astype(np.uint8)
