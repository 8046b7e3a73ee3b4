"""image_files.py: one reader of image folders for training data and FID, each with its policy."""

import numpy as np
import pytest
from PIL import Image

from vaevar import image_files
from vaevar.errors import VaevarError


def numbered_folder(folder, count, size=(8, 8)):
    """PNGs whose first pixel holds their index: which images came back, and in what order."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = np.full((*size, 3), 255 - i, np.uint8)
        pixels[0, 0] = i
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


def test_a_subset_is_seeded_and_spread_not_the_sorted_prefix(tmp_path):
    folder = numbered_folder(tmp_path / "set", 40)
    subset = image_files.read_images(str(folder), image_files.FID, count=10, seed=0)
    indices = subset[:, 0, 0, 0].tolist()
    assert (
        indices
        == image_files.read_images(str(folder), image_files.FID, count=10, seed=0)[:, 0, 0, 0].tolist()
    )
    assert indices != list(range(10)) and max(indices) >= 20  # a random draw over the whole folder
    assert indices == sorted(indices) and len(set(indices)) == 10
    other_seed = image_files.read_images(str(folder), image_files.FID, count=10, seed=1)[:, 0, 0, 0].tolist()
    assert other_seed != indices
    assert len(image_files.read_images(str(folder), image_files.FID)) == 40  # no count: all


def test_fid_policy_takes_sizes_and_modes_as_they_come_training_refuses_them(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / "a.png")
    Image.new("L", (8, 8), 77).save(folder / "b.png")
    Image.new("RGB", (12, 6), (1, 2, 3)).save(folder / "c.jpg")
    images = image_files.read_images(str(folder), image_files.FID)
    assert isinstance(images, list) and [im.shape for im in images] == [(8, 8, 3), (8, 8, 3), (6, 12, 3)]
    np.testing.assert_array_equal(images[1], np.full((8, 8, 3), 77, np.uint8))  # gray repeated to RGB
    with pytest.raises(VaevarError, match="mix grayscale and RGB"):
        image_files.read_images(str(folder), image_files.TRAINING)
    (folder / "b.png").unlink()
    with pytest.raises(VaevarError, match="different sizes"):
        image_files.read_images(str(folder), image_files.TRAINING)
    (folder / "c.jpg").unlink()
    same = image_files.read_images(str(folder), image_files.FID)
    assert isinstance(same, np.ndarray) and same.shape == (1, 8, 8, 3)  # one size: one array


def test_grayscale_stays_one_channel_for_training(tmp_path):
    folder = tmp_path / "gray"
    folder.mkdir()
    for i in range(3):
        Image.new("L", (5, 5), i).save(folder / f"{i}.png")
    assert image_files.read_images(str(folder), image_files.TRAINING).shape == (3, 5, 5, 1)
    assert image_files.read_images(str(folder), image_files.FID).shape == (3, 5, 5, 3)


def test_a_corrupt_file_is_named_and_an_empty_folder_refused(tmp_path):
    folder = numbered_folder(tmp_path / "set", 3)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(VaevarError, match="cannot read image broken.png"):
        image_files.read_images(str(folder), image_files.FID)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(VaevarError, match="no images"):
        image_files.read_images(str(tmp_path / "empty"), image_files.FID)


def test_a_zip_reads_as_its_folder(tmp_path):
    import shutil

    folder = numbered_folder(tmp_path / "set", 6)
    archive = shutil.make_archive(str(tmp_path / "set"), "zip", folder)
    np.testing.assert_array_equal(
        image_files.read_images(archive, image_files.FID),
        image_files.read_images(str(folder), image_files.FID),
    )


def test_16_bit_gray_is_scaled_and_macos_companions_skipped(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    Image.fromarray(np.full((4, 4), 60000, np.uint16)).save(folder / "deep.png")  # Pillow: mode I;16
    (folder / "._deep.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / "__MACOSX").mkdir()
    images = image_files.read_images(str(folder), image_files.FID)
    assert images.shape == (1, 4, 4, 3) and images.max() == 60000 >> 8  # scaled, not clipped to 255
