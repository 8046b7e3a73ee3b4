import gzip
import os
import zipfile

import numpy as np
import pytest

import data
from common import VaevarError
from tests.conftest import write_celeba_zip


def test_cifar_tarball_layout_and_splits(cifar_tarball):
    path, batches = cifar_tarball
    train = data.load("cifar10", "train", path)
    test = data.load("cifar10", "test", path)
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


def test_celeba_folder_without_partition_uses_last_tenth(tmp_path):
    zip_path = tmp_path / "img_align_celeba.zip"
    write_celeba_zip(zip_path, count=10, with_partition=False)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(tmp_path / "folder")
    folder = str(tmp_path / "folder")
    assert len(data.load("celeba", "train", folder)) == 9
    assert len(data.load("celeba", "test", folder)) == 1


def test_bilinear_halving_averages_2x2_blocks():
    image = np.arange(16, dtype=np.float64).reshape(4, 4, 1)
    out = data.resize_bilinear(image, 2, 2)
    np.testing.assert_allclose(out[..., 0], [[2.5, 4.5], [10.5, 12.5]])


def test_half_pixel_resize_matches_tensorflow():
    tf = pytest.importorskip("tensorflow")
    image = np.random.default_rng(0).random((128, 128, 3))
    ours = data.resize_bilinear(image, 64, 64)
    theirs = tf.image.resize(image[None], (64, 64), method="bilinear", antialias=False).numpy()[0]
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


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
