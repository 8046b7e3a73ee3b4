import gzip
import io
import os
import zipfile

import numpy as np
import pytest

from tests.conftest import write_celeba_zip
from vaevar import data, image_files
from vaevar.data import jpeg
from vaevar.errors import VaevarError
from vaevar.fid import resize


def test_cifar_tarball_layout_and_splits(cifar_tarball):
    path, batches = cifar_tarball
    train = data.load("cifar10", "train", path, jpeg_round_trip=False)
    test = data.load("cifar10", "test", path, jpeg_round_trip=False)
    assert train.shape == (100, 32, 32, 3) and test.shape == (20, 32, 32, 3)
    assert train.dtype == np.uint8
    # CHW rows become HWC images: pixel (row 1, col 2) of channel 0 is byte 1*32+2.
    first = batches["data_batch_1"][0]
    assert train[0, 1, 2, 0] == first[34]
    assert train[0, 1, 2, 2] == first[2 * 1024 + 34]
    np.testing.assert_array_equal(test[5].transpose(2, 0, 1).ravel(), batches["test_batch"][5])


def test_npz_keras_layout_gets_channel_axis(mnist_npz):
    train = data.load("mnist", "train", mnist_npz)
    assert train.shape == (300, 28, 28, 1)
    assert data.load("mnist", "test", mnist_npz, limit=7).shape == (7, 28, 28, 1)


def test_celeba_zip_crop_resize_and_partition(celeba_zip):
    train = data.load("celeba", "train", celeba_zip)
    test = data.load("celeba", "test", celeba_zip)
    assert train.shape == (8, 64, 64, 3) and test.shape == (2, 64, 64, 3)  # partition 0 / 2


def test_celeba_crop_is_the_papers_window():
    image = np.zeros((218, 178, 3), np.uint8)
    image[45:173, 25:153] = 200  # exactly the crop window
    out = data.celeba_crop_resize(image)
    assert out.shape == (64, 64, 3)
    assert np.all(out == 200)


def test_celeba_resize_is_pillows_antialiased_bilinear():
    """The authors resize with Pillow's BILINEAR, which filters on downscaling: an interior output
    pixel is the [1, 3, 3, 1] / 8 weighting of 4 inputs per axis (not tf.image.resize's 2x2 mean)."""
    image = np.random.default_rng(1).integers(0, 256, (218, 178, 3), dtype=np.uint8)
    out = data.celeba_crop_resize(image).astype(np.float64)
    crop = image[45:173, 25:153].astype(np.float64)
    taps = np.array([1, 3, 3, 1]) / 8.0
    for i, j in [(1, 1), (10, 20), (31, 40), (62, 62)]:
        window = crop[2 * i - 1 : 2 * i + 3, 2 * j - 1 : 2 * j + 3]
        expected = np.einsum("a,b,abc->c", taps, taps, window)
        np.testing.assert_allclose(out[i, j], expected, atol=1.0)
    assert np.abs(out - resize.resize_bilinear(crop, 64, 64)).max() > 5  # not the unfiltered resize


def test_celeba_folder_without_partition_uses_last_tenth(tmp_path):
    zip_path = tmp_path / "img_align_celeba.zip"
    write_celeba_zip(zip_path, count=10, with_partition=False)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(tmp_path / "folder")
    folder = str(tmp_path / "folder")
    assert len(data.load("celeba", "train", folder)) == 9
    assert len(data.load("celeba", "test", folder)) == 1


def test_unknown_dataset_name():
    with pytest.raises(VaevarError, match="unknown data set 'cifar100'"):
        data.load("cifar100", "train", "x.npz")


def test_corrupt_tarball(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(b"not a tarball")
    with pytest.raises(VaevarError, match="not a valid CIFAR-10 python tarball"):
        data.load("cifar10", "train", str(path))


def test_truncated_tarball(tmp_path, cifar_tarball):
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(open(cifar_tarball[0], "rb").read()[:3000])
    with pytest.raises(VaevarError, match="CIFAR-10"):
        data.load("cifar10", "train", str(path))


def test_missing_file(tmp_path):
    with pytest.raises(VaevarError, match="does not exist"):
        data.load("mnist", "train", str(tmp_path / "absent.npz"))


def test_wrong_image_size_for_dataset(cifar_tarball):
    with pytest.raises(VaevarError, match="expected \\(28, 28, 1\\)"):
        data.load("mnist", "train", cifar_tarball[0])


def test_corrupt_zip(tmp_path):
    path = tmp_path / "img_align_celeba.zip"
    path.write_bytes(b"PK garbage")
    with pytest.raises(VaevarError, match="not a readable image folder"):
        data.load("celeba", "train", str(path))


def test_local_dir_environment_variable(tmp_path, mnist_npz, monkeypatch):
    os.symlink(mnist_npz, tmp_path / "mnist.npz")
    monkeypatch.setenv("VAEVAR_DATA_DIR", str(tmp_path))
    assert data.load("mnist", "test").shape == (60, 28, 28, 1)


def write_idx_images(path, images):
    """The MNIST distribution's own format: magic 0x00000803, three big-endian counts, pixel bytes."""
    header = bytes([0, 0, 8, 3]) + np.asarray(images.shape, ">u4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + images.tobytes())


def test_mnist_idx_folder_plain_and_gzip(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    write_idx_images(tmp_path / "train-images-idx3-ubyte.gz", train)
    write_idx_images(tmp_path / "t10k-images-idx3-ubyte", test)
    np.testing.assert_array_equal(data.load("mnist", "train", str(tmp_path)), train[..., None])
    np.testing.assert_array_equal(data.load("fashion_mnist", "test", str(tmp_path)), test[..., None])


def test_truncated_or_foreign_idx_file(tmp_path):
    write_idx_images(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-100])
    with pytest.raises(VaevarError, match="truncated; download it again"):
        data.load("mnist", "train", str(tmp_path))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + raw[4:])  # a labels file's magic
    with pytest.raises(VaevarError, match="not an IDX image file"):
        data.load("mnist", "train", str(tmp_path))


def write_image_tree(
    root,
    splits=("train", "test"),
    classes=("cat", "dog", "frog"),
    per_class=4,
    size=(32, 32),
    as_zip=False,
    prefix="",
):
    """An ImageFolder tree <split>/<class>/<n>.png (or a zip of it); pixel [0, 0, 0] encodes the label."""
    from PIL import Image

    rng = np.random.default_rng(0)
    files = {}
    for split in splits:
        for label, name in enumerate(classes):
            for i in range(per_class):
                image = rng.integers(0, 256, size + (3,), dtype=np.uint8)
                image[0, 0, 0] = label
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, format="PNG")
                files[f"{prefix}{split}/{name}/{i:04d}.png"] = buffer.getvalue()
    if as_zip:
        with zipfile.ZipFile(root, "w") as archive:
            for name, payload in files.items():
                archive.writestr(name, payload)
    else:
        for name, payload in files.items():
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(payload)
    return str(root)


@pytest.mark.parametrize("as_zip, prefix", [(False, ""), (True, ""), (True, "cifar10/")])
def test_image_tree_folder_and_zip(tmp_path, as_zip, prefix):
    path = write_image_tree(tmp_path / ("tree.zip" if as_zip else "tree"), as_zip=as_zip, prefix=prefix)
    train = data.load("cifar10", "train", path)
    images, labels, classes = data.load_labeled(path, "test")
    assert train.shape == (12, 32, 32, 3) and images.shape == (12, 32, 32, 3)
    assert classes == ["cat", "dog", "frog"]
    np.testing.assert_array_equal(images[:, 0, 0, 0], labels)  # labels follow the sorted class folders
    assert np.bincount(labels).tolist() == [4, 4, 4]


def test_image_tree_environment_variable_may_name_the_zip(tmp_path, monkeypatch):
    path = write_image_tree(tmp_path / "cifar10_jpeg_q75.zip", as_zip=True)
    monkeypatch.setenv("VAEVAR_DATA_DIR", path)
    assert data.load("cifar10", "test").shape == (12, 32, 32, 3)


def test_image_tree_errors(tmp_path):
    only_train = write_image_tree(tmp_path / "a.zip", splits=("train",), as_zip=True)
    with pytest.raises(VaevarError, match="no 'test' split"):
        data.load("cifar10", "test", only_train)
    flat = tmp_path / "flat"
    flat.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(flat / "x.png")
    with pytest.raises(VaevarError, match="unknown layout"):
        data.load("cifar10", "train", str(flat))
    mixed = write_image_tree(tmp_path / "mixed", classes=("cat",), per_class=1)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(os.path.join(mixed, "train", "cat", "9999.png"))
    with pytest.raises(VaevarError, match="different sizes"):
        data.load("cifar10", "train", mixed)
    stray = write_image_tree(tmp_path / "stray", classes=("cat",), per_class=1)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(os.path.join(stray, "train", "loose.png"))
    with pytest.raises(VaevarError, match="unknown layout"):
        data.load("cifar10", "train", stray)


def test_limit_and_evaluation_sets_are_random_not_a_class_prefix(tmp_path):
    path = write_image_tree(tmp_path / "tree", classes=tuple("abcdefghij"), per_class=10)
    first = data.load("cifar10", "train", path, limit=30)
    assert len(np.unique(first[:, 0, 0, 0])) > 3  # a prefix would hold 3 classes
    evaluation = data.load_evaluation("cifar10", path, 30, "test")
    again = data.load_evaluation("cifar10", path, 30, "test")
    np.testing.assert_array_equal(evaluation, again)  # fixed seed: generate.py and compute_fid.py agree
    assert len(np.unique(evaluation[:, 0, 0, 0])) > 3
    assert len(data.load_evaluation("cifar10", path, 1000, "test")) == 100  # all when asking for more


SHARED_ZIP = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10", "cifar10_jpeg_q75.zip"
)


@pytest.mark.skipif(not os.path.exists(SHARED_ZIP), reason="../shared/data/cifar10 is absent")
def test_shared_cifar10_copy_loads_with_official_labels():
    images, labels, classes = data.load_labeled(SHARED_ZIP, "test")
    assert images.shape == (10000, 32, 32, 3) and np.bincount(labels).tolist() == [1000] * 10
    assert classes[0] == "airplane" and classes[9] == "truck"


def test_seeded_subset_spreads_over_the_whole_set():
    # grids, evaluation sets and limits: a prefix of a class-sorted source would be one class.
    shown = image_files.seeded_subset(10000, 64, seed=0)
    assert len(np.unique(shown)) == 64 and np.all(np.diff(shown) > 0)
    assert shown[-1] > 5000 and shown[0] < 5000
    assert np.array_equal(shown, image_files.seeded_subset(10000, 64, seed=0))
    assert np.array_equal(image_files.seeded_subset(40, 64, seed=0), np.arange(40))


def test_crafted_cifar_tarball_runs_nothing(tmp_path):
    """A data_batch whose pickle reduces to os.system is refused by name before anything runs."""
    import pickle
    import tarfile

    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            payload = pickle.dumps({b"data": Exploit()})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    with pytest.raises(VaevarError, match=r"(posix|os|nt)\.system.*refusing"):
        data.load("cifar10", "train", str(path))
    assert not marker.exists()


@pytest.mark.parametrize("split", ["train", "test"])
def test_lossless_cifar10_gets_the_authors_jpeg_round_trip_once(cifar_tarball, monkeypatch, tmp_path, split):
    """Both splits' pixels (the authors train and score on JPEG'd images) are written to JPEG quality 75 (4:2:0)
    and read back, as the authors' loader does; the result is cached, so the second load encodes nothing."""
    from PIL import Image

    monkeypatch.setenv("VAEVAR_CACHE_DIR", str(tmp_path / "cache"))
    path, batches = cifar_tarball
    raw = data.load("cifar10", split, path, jpeg_round_trip=False)
    loaded = data.load("cifar10", split, path)
    assert not np.array_equal(loaded, raw)
    buffer = io.BytesIO()
    Image.fromarray(raw[3]).save(
        buffer, format="JPEG", quality=75
    )  # imageio's .jpg default: Pillow, quality 75
    np.testing.assert_array_equal(loaded[3], np.asarray(Image.open(buffer)))
    assert len(os.listdir(tmp_path / "cache")) == 1
    monkeypatch.setattr(jpeg, "jpeg_round_trip", lambda *a: pytest.fail("encoded again instead of the cache"))
    np.testing.assert_array_equal(data.load("cifar10", split, path), loaded)


def test_jpeg_image_tree_is_not_compressed_twice(tmp_path):
    """A source of .jpg files (the shared copy's layout) is decoded as it is."""
    from PIL import Image

    rng = np.random.default_rng(1)
    originals = {}
    for split in ("train", "test"):
        folder = tmp_path / "tree" / split / "cat"
        folder.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                folder / f"{i}.jpg", quality=75
            )
            originals[(split, i)] = np.asarray(Image.open(folder / f"{i}.jpg"))
    loaded = data.load("cifar10", "test", str(tmp_path / "tree"))
    np.testing.assert_array_equal(loaded, np.stack([originals[("test", i)] for i in range(3)]))


# ------------------------------------------------------------------ --dataset images


def test_own_images_split_is_seeded_disjoint_and_whole(tmp_path):
    from tests.conftest import write_image_folder

    folder = str(tmp_path / "mine")
    names = write_image_folder(folder, count=40)
    split = data.FolderSplit(16, 0.25, seed=3)
    train, test = data.split_names(names, split.test_fraction, split.seed)
    assert (
        (len(train), len(test)) == (30, 10) and sorted(train + test) == names and not set(train) & set(test)
    )
    assert (train, test) == data.split_names(names, 0.25, 3)  # reproducible
    assert data.split_names(names, 0.25, 4)[1] != test  # the seed chooses it
    images = {s: data.load("images", s, folder, folder=split) for s in data.SPLITS}
    assert images["train"].shape == (30, 16, 16, 3) and images["test"].shape == (10, 16, 16, 3)
    # the same files whichever way they are read: one image of the test split decoded by hand
    from PIL import Image

    by_hand = data.square_resize(np.asarray(Image.open(os.path.join(folder, test[0])).convert("RGB")), 16)
    np.testing.assert_array_equal(images["test"][0], by_hand)
    # a limit is a seeded subset of the split, never the other split's files
    limited = data.load("images", "train", folder, limit=5, folder=split)
    assert all(any(np.array_equal(x, y) for y in images["train"]) for x in limited)


def test_own_images_all_grayscale_stay_one_channel_and_a_zip_reads_as_its_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "gray" / "nested"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20 + 4 * i, 24), dtype=np.uint8)).save(folder / f"{i}.png")
    split = data.FolderSplit(16, 0.2)
    images = data.load("images", "train", str(tmp_path / "gray"), folder=split)
    assert images.shape == (5, 16, 16, 1)
    assert data.describe_folder(split, str(tmp_path / "gray")).channels == 1
    archive = tmp_path / "gray.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(6):
            z.write(folder / f"{i}.png", f"nested/{i}.png")
    np.testing.assert_array_equal(data.load("images", "train", str(archive), folder=split), images)


def test_one_colour_file_makes_every_split_rgb(tmp_path):
    """The channel count is the folder's, not each split's: a mostly-gray folder with one colour file gives
    RGB train and test images wherever that file falls, so the model and its evaluation images agree."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "colour.png")
    for seed in range(3):
        split = data.describe_folder(data.FolderSplit(16, 0.2, seed), str(tmp_path))
        assert split.channels == 3
        assert {data.load("images", s, str(tmp_path), folder=split).shape[-1] for s in data.SPLITS} == {3}
        assert {
            data.load("images", s, str(tmp_path), folder=data.FolderSplit(16, 0.2, seed)).shape[-1]
            for s in data.SPLITS
        } == {3}


def test_square_resize_takes_the_centred_square():
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, 10:30] = 200  # the centred 20 x 20 square, between two black bands
    np.testing.assert_array_equal(data.square_resize(image, 20), np.full((20, 20, 3), 200, np.uint8))
    tall = np.arange(30 * 16, dtype=np.uint8).reshape(30, 16, 1)
    np.testing.assert_array_equal(data.square_resize(tall, 16), tall[7:23])  # (30 - 16) // 2 = 7 rows off
    assert data.square_resize(image, 32).shape == (32, 32, 3)  # upscaled too


def test_own_images_refuse_a_changed_folder_and_bad_settings(tmp_path):
    from tests.conftest import write_image_folder

    folder = str(tmp_path / "mine")
    write_image_folder(folder, count=12)
    split = data.describe_folder(data.FolderSplit(16, 0.25, 0), folder)
    data.load("images", "test", folder, folder=split)
    os.remove(os.path.join(folder, "img_0003.png"))
    with pytest.raises(VaevarError, match="not the ones stage 1 split"):
        data.load("images", "test", folder, folder=split)
    for size, message in (
        ("32x64", "images become squares"),
        (48, "a power of two"),
        (512, "a power of two"),
    ):
        with pytest.raises(VaevarError, match=message):
            data.folder_split(size, 0.1, 0)
    with pytest.raises(VaevarError, match="between 0 and 1"):
        data.folder_split(32, 1.0, 0)
    with pytest.raises(VaevarError, match="cannot be split"):
        data.split_names(["a.png"], 0.1, 0)
    with pytest.raises(VaevarError, match="needs --data-path"):
        data.load("images", "train", folder=data.FolderSplit())
    with pytest.raises(VaevarError, match="needs folder="):  # never a silent default split
        data.load("images", "train", folder)


def test_own_images_take_the_nearest_authors_settings():
    from models.first_stage import build_encoder, kl_weight_for, num_scales

    assert [num_scales(s) for s in (16, 28, 32, 64, 128, 256)] == [2, 3, 3, 4, 5, 6]
    for size in (16, 128):  # the encoder ends at 8 x 8, as the authors' 32 and 64 px do
        encoder = build_encoder((size, size, 3), 64, 8)
        assert encoder.get_layer(f"enc_scale{num_scales(size) - 1}_add").output.shape[1:3] == (8, 8)
    small, large = data.dataset("images", 16), data.dataset("images", 128)
    assert (small.stage1, small.stage2_width) == (data.DATASETS["cifar10"].stage1, 2048)
    assert (large.stage1, large.stage2_width) == (data.DATASETS["celeba"].stage1, 4096)
    assert small.shape == (16, 16, None) and small.paper_fids is None and small.jpeg_quality is None
    assert [kl_weight_for(s, 64) for s in (16, 32, 64, 128, 256)] == [0.25, 1, 4, 16, 64]
