"""One FID run: the reference side's statistics (cached) and one scored sample set, as FidSettings say."""

import dataclasses
import glob
import hashlib
import os
import time
import zipfile
from collections.abc import Mapping

import numpy as np

from vaevar import backend, data, files
from vaevar.errors import VaevarError
from vaevar.fid.diversity import DENSITY_COVERAGE_K, PRECISION_RECALL_K, diversity, knn_radii
from vaevar.fid.features import content_digest, image_features, load_source, scored_count
from vaevar.fid.frechet import (
    KID_SUBSET,
    frechet_distance,
    kernel_inception_distance,
    kid_std_subset,
    scored_and_whole_statistics,
    scored_subset,
)
from vaevar.fid.network import FEATURES


@dataclasses.dataclass(frozen=True)
class FidSettings:
    """How compute_fid.py scores: built from its flags (cli.settings_from), whose defaults are the authors'."""

    reference: str  # a data set name, an .npz or a folder
    num_samples: int | None  # per side (None: all), a seeded random subset
    reference_split: str
    data_path: str | None
    jpeg_round_trip: bool
    drop_remainder: int  # score a multiple of this many images per side (their batches of 64)
    input_convention: str
    batch_size: int = 250  # images per Inception call
    frechet_method: str = "sqrtm"
    kid: bool = True  # KID beside FID (frechet.kernel_inception_distance)
    rescore: bool = False
    folder: data.FolderSplit | None = None  # reference "images": the run's split of its folder


# The authors' protocol for a run's sets (compute_fid.py's run form, vaevar.run.Run.fid): 10,000 per side,
# [0, 1] floats as x * 2 - 1, whole batches of 64.
RUN_DEFAULTS = {"num_samples": 10000, "input_convention": "authors", "drop_remainder": 64}


def check_statistics_output(path: str) -> None:
    """Where --save-stats may write: an .npz, never over a file that holds something else."""
    if not path.endswith(".npz"):
        raise VaevarError(f"--save-stats {path}: give a file name ending in .npz")
    if os.path.exists(path) and not is_statistics_file(path):
        raise VaevarError(f"--save-stats {path} exists and holds no statistics: choose another name")


STATISTICS_FOLDER = "fid_statistics"  # in data.cache_dir(): every set's statistics, keyed by content
SETTINGS_KEYS = ("weights_hash", "input_convention")  # what changes the features of the same images


def statistics_cache() -> str:
    """The folder of cached set statistics, keyed by content."""
    return os.path.join(data.cache_dir(), STATISTICS_FOLDER)


def set_statistics(
    images: np.ndarray | list[np.ndarray],
    n: int,
    settings: FidSettings,
    weights_path: str,
    weights_hash: str,
    label: str,
    source: str,
) -> dict[str, np.ndarray | np.generic]:
    """mu and sigma of `n` of the images (the authors' scored subset; all when n == len), of all of them,
    the scored features and their nearest-neighbour radii (precision, recall, density, coverage), cached in
    statistics_cache() under a key of the content: the images' SHA-256, the weights' and the settings that
    change the features."""
    total = len(images)
    images_sha256 = content_digest(images)
    key = hashlib.sha256(
        f"{images_sha256} {weights_hash} {settings.input_convention} {n}".encode()
    ).hexdigest()
    cache = os.path.join(statistics_cache(), f"{key[:20]}.npz")
    if os.path.exists(cache):
        try:
            with np.load(cache) as stored:
                if str(stored["key"]) == key:
                    return {k: stored[k] for k in stored.keys()}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # a damaged cache entry is recomputed
    features = image_features(images, weights_path, settings.batch_size, label, settings.input_convention)
    (mu, sigma), (mu_whole_set, sigma_whole_set) = scored_and_whole_statistics(features, n)
    stats = {
        "mu": mu,
        "sigma": sigma,
        "count": np.int64(n),
        "mu_whole_set": mu_whole_set,
        "sigma_whole_set": sigma_whole_set,
        "count_whole_set": np.int64(total),
        "weights_hash": np.str_(weights_hash),
        "input_convention": np.str_(settings.input_convention),
        "images_sha256": np.str_(images_sha256),
        "source": np.str_(source),
        "created": np.str_(time.strftime("%Y-%m-%d %H:%M")),
        "key": np.str_(key),
    }
    stats["features"] = features[scored_subset(total, n)]
    if n > DENSITY_COVERAGE_K:
        radii = knn_radii(stats["features"], (PRECISION_RECALL_K, DENSITY_COVERAGE_K))
        stats["radii_3"], stats["radii_5"] = radii[PRECISION_RECALL_K], radii[DENSITY_COVERAGE_K]
    files.save_npz(cache, compress=False, **stats)  # 80 MB of features per 10,000: zlib gains little
    return stats


def reference_statistics(
    settings: FidSettings, weights_path: str, weights_hash: str, split: str | None = None
) -> dict[str, np.ndarray | np.generic]:
    """set_statistics of the reference side (`split` of a data set; default settings.reference_split)."""
    images = load_source(
        settings.reference,
        split or settings.reference_split,
        settings.num_samples,
        settings.data_path,
        settings.jpeg_round_trip,
        folder=settings.folder,
    )
    n = scored_count(len(images), settings.drop_remainder)
    source = f"{settings.reference} {split or settings.reference_split}"
    return set_statistics(images, n, settings, weights_path, weights_hash, "reference", source)


# ------------------------------------------------------------------ statistics files


def is_statistics_file(path: str) -> bool:
    """An .npz holding mu and sigma (ours from --save-stats, or pytorch-fid's) and no images."""
    if not (path.endswith(".npz") and os.path.isfile(path)):
        return False
    try:
        with np.load(path) as archive:
            return {"mu", "sigma"} <= set(archive.files) and "images" not in archive.files
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def read_statistics(path: str) -> dict[str, np.ndarray | np.generic]:
    """A statistics file's arrays: mu and sigma of pool_3 features (refused otherwise)."""
    with np.load(path) as archive:
        stats = {k: archive[k] for k in archive.files}
    mu, sigma = np.asarray(stats["mu"]), np.asarray(stats["sigma"])
    if mu.shape != (FEATURES,) or sigma.shape != (FEATURES, FEATURES):
        raise VaevarError(
            f"{path}: mu {mu.shape} and sigma {sigma.shape} are not pool_3 statistics "
            f"({FEATURES} and {FEATURES}x{FEATURES})"
        )
    return stats  # no "count": pytorch-fid's files record none (compare says "unknown")


def check_statistics_settings(
    stats: Mapping[str, np.ndarray | np.generic], path: str, weights_hash: str, input_convention: str
) -> None:
    """Refuse statistics computed with other weights or another input convention, naming both."""
    ours = {"weights_hash": weights_hash, "input_convention": input_convention}
    theirs = {k: str(stats[k]) for k in SETTINGS_KEYS if k in stats}
    if len(theirs) < len(SETTINGS_KEYS):
        print(
            f"note: {path} records no feature settings (not written by --save-stats, e.g. pytorch-fid's): "
            f"its weights, resize and input convention cannot be checked against this run's"
        )
    elif theirs != ours:
        named = lambda s: f"weights {s['weights_hash'][:12]}, input convention {s['input_convention']}"  # noqa: E731
        raise VaevarError(
            f"{path} was computed with {named(theirs)}; this run uses {named(ours)}: "
            f"compute both sides with the same settings"
        )


def save_statistics(path: str, stats: dict[str, np.ndarray | np.generic]) -> None:
    """mu, sigma, the count, the feature settings and the images' SHA-256 (pytorch-fid reads mu and sigma)."""
    check_statistics_output(path)
    kept = ("mu_whole_set", "sigma_whole_set", "count_whole_set", *SETTINGS_KEYS, "images_sha256", "source")
    files.save_npz(
        path,
        mu=stats["mu_whole_set"],
        sigma=stats["sigma_whole_set"],
        count=stats["count_whole_set"],
        **{k: stats[k] for k in kept[3:]},
    )


def list_statistics() -> list[dict[str, str]]:
    """Every cached set's statistics: its file, count, feature settings, source and date, newest first."""
    rows = []
    for path in glob.glob(os.path.join(statistics_cache(), "*.npz")):
        try:
            with np.load(path) as stored:
                row = {
                    k: str(stored[k]) for k in ("count", *SETTINGS_KEYS, "images_sha256", "source", "created")
                }
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            row = {"source": "(unreadable: delete it)"}
        rows.append({"file": path, **row})
    return sorted(rows, key=lambda r: r.get("created", ""), reverse=True)


def score_set(
    path: str,
    reference: Mapping[str, np.ndarray | np.generic],
    settings: FidSettings,
    weights_path: str,
    weights_hash: str,
    earlier: dict,
    scored: dict[str, dict[str, float | int]],
    train_reference: Mapping[str, np.ndarray | np.generic] | None = None,
    others: Mapping[str, dict] | None = None,
) -> dict | None:
    """fid.json's entry for one sample file or folder, or None when `earlier` already holds it for the same
    images, reference and settings (and not settings.rescore). Files holding the same images are scored
    once: within a run through `scored` (content digest -> its scores, shared across calls),
    across runs through `others` (fid.json's other entries). With `train_reference` (statistics of training
    images), the entry has fid_train_reference too."""
    import keras

    started = time.time()
    label = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
    images = load_source(path, "train", settings.num_samples, datasets=False)  # samples: always paths
    n, total = scored_count(len(images), settings.drop_remainder), len(images)
    digest = content_digest(images)
    identity = {
        "n": int(n),
        "n_whole_set": int(total),
        "reference": settings.reference,
        "reference_split": settings.reference_split,
        "reference_n": int(reference["count"]),
        "reference_n_whole_set": int(reference["count_whole_set"]),
        "reference_sha256": hashlib.sha256(np.float64(reference["mu"]).tobytes()).hexdigest(),
        "samples_sha256": digest,
        "weights_hash": weights_hash,
        "frechet_method": settings.frechet_method,
        "input_convention": settings.input_convention,
    }
    if train_reference is not None:
        identity["train_reference_sha256"] = str(train_reference["images_sha256"])
    unchanged = same_images_scored({label: earlier}, identity, settings) is not None
    if unchanged and not settings.rescore:
        return None
    same = (
        None if settings.rescore or digest in scored else same_images_scored(others or {}, identity, settings)
    )
    if same is not None:
        print(f"{label}: the same images as {same['samples']}, scored in an earlier run; its FIDs are reused")
        return {
            **same,
            **identity,
            "samples": path,
            "reused_from": same["samples"],
            "seconds": round(time.time() - started, 2),
        }
    if digest not in scored:
        features = image_features(images, weights_path, settings.batch_size, label, settings.input_convention)
        statistics_scored, statistics_whole_set = scored_and_whole_statistics(features, n)
        side = {
            "mu": statistics_scored[0],
            "sigma": statistics_scored[1],
            "features": features[scored_subset(total, n)],
        }
        scores = scores_against(reference, side, settings.frechet_method, settings.kid)
        fids = {"fid": scores.pop("fid")}  # then precision ... and KID, after the FIDs
        fids["fid_whole_set"] = whole_set_fid(
            reference, fids["fid"], statistics_whole_set, n, total, settings.frechet_method
        )
        if train_reference is not None:
            fids["fid_train_reference"], fids["fid_train_reference_whole_set"] = distances(
                train_reference, statistics_scored, statistics_whole_set, n, total, settings.frechet_method
            )
            fids["train_reference_n"] = int(train_reference["count"])
        scored[digest] = {**fids, **scores}
    else:
        print(f"{label}: the same images as a set scored above; its features are reused, and its FIDs")
    entry = {
        **scored[digest],
        "samples": path,
        **identity,
        "backend": keras.backend.backend(),
        "device": backend.device_description(),
        "seconds": round(time.time() - started, 2),
    }
    return entry


def same_images_scored(entries: Mapping[str, dict], identity: dict, settings: FidSettings) -> dict | None:
    """An fid.json entry (any name) of the same images under the same reference and settings, or None: the
    gate leaves gen1_renorm and gen2_renorm equal to gen1 and gen2, and they need not cost a feature pass."""
    for entry in entries.values():
        complete = "precision" in entry and (not settings.kid or "kid" in entry)
        if complete and all(entry.get(k) == v for k, v in identity.items()):
            return entry
    return None


def distances(
    reference: Mapping[str, np.ndarray | np.generic],
    statistics_scored: tuple[np.ndarray, np.ndarray],
    statistics_whole_set: tuple[np.ndarray, np.ndarray],
    n: int,
    total: int,
    method: str,
) -> tuple[float, float]:
    """(FID of the scored n, FID of the whole sets) against one reference. The authors drop the last partial
    batch; the whole set is the other common convention (the same number when nothing is dropped)."""
    fid = frechet_distance(reference["mu"], reference["sigma"], *statistics_scored, method=method)
    return fid, whole_set_fid(reference, fid, statistics_whole_set, n, total, method)


def whole_set_fid(
    reference: Mapping[str, np.ndarray | np.generic],
    fid: float,
    statistics_whole_set: tuple[np.ndarray, np.ndarray],
    n: int,
    total: int,
    method: str,
) -> float:
    """FID of the whole sets against the reference's whole set; `fid`, the scored n's, when neither side
    dropped any image (one number, computed once)."""
    if total == n and int(reference["count_whole_set"]) == int(reference["count"]):
        return fid
    return frechet_distance(
        reference["mu_whole_set"], reference["sigma_whole_set"], *statistics_whole_set, method=method
    )


def scores_against(
    reference: Mapping[str, np.ndarray | np.generic],
    scored: Mapping[str, np.ndarray | np.generic],
    frechet_method: str,
    kid: bool = True,
) -> dict[str, float]:
    """The scores of a set against a reference, from each side's mu and sigma (set_statistics, or a
    statistics file's) and features where they have them: the FID; with features on both sides, more than
    k of the set's and the reference's k-NN radii, precision, recall, density and coverage (precision: the
    fraction of the set inside the reference's manifold); with features on both sides and `kid`, KID, its
    std, and the features a side in each subset of the mean and of the std (kid_subset, kid_std_subset:
    they differ when a side holds at most KID_SUBSET). Run.score, score_set and compare all score here."""
    scores = {
        "fid": frechet_distance(
            reference["mu"],
            reference["sigma"],
            scored["mu"],
            scored["sigma"],
            method=frechet_method,
            features1=reference.get("features"),
            features2=scored.get("features"),
        )
    }
    features = "features" in reference and "features" in scored  # a statistics file holds none
    if features and "radii_3" in reference and len(scored["features"]) > DENSITY_COVERAGE_K:
        radii = {PRECISION_RECALL_K: reference["radii_3"], DENSITY_COVERAGE_K: reference["radii_5"]}
        scores.update(diversity(reference["features"], scored["features"], radii))
    if features and kid:
        scores["kid"], scores["kid_std"] = kernel_inception_distance(
            reference["features"], scored["features"]
        )
        counts = len(reference["features"]), len(scored["features"])
        scores["kid_subset"], scores["kid_std_subset"] = min(KID_SUBSET, *counts), kid_std_subset(*counts)
    return scores


# ------------------------------------------------------------------ two sets, as pytorch-fid compares them


def read_side(path: str, num_samples: int | None) -> dict | np.ndarray | list[np.ndarray]:
    """One side of a comparison, read and checked before any weights are loaded: a statistics file's arrays
    (a dict), or the images of a folder / .zip / .npz (num_samples of them at random, or all)."""
    if is_statistics_file(path):
        return read_statistics(path)
    images = load_source(path, "train", num_samples, datasets=False)
    if len(images) < 2:
        raise VaevarError(f"{path}: {len(images)} image: FID needs at least 2 per side")
    if len(images) > LARGE_SET:
        print(f"note: {path}: {len(images)} images (the usual FID set is at most {LARGE_SET}: --num-samples)")
    return images


def side_statistics(
    side: dict | np.ndarray | list[np.ndarray],
    path: str,
    settings: FidSettings,
    weights_path: str,
    weights_hash: str,
) -> dict[str, np.ndarray | np.generic]:
    """A statistics file's arrays, its settings checked against these; or set_statistics of images, every
    one scored."""
    if isinstance(side, dict):
        check_statistics_settings(side, path, weights_hash, settings.input_convention)
        return side
    label = os.path.basename(path.rstrip("/"))
    return set_statistics(side, len(side), settings, weights_path, weights_hash, label, path)


LARGE_SET = 50000


def compare(
    side_a: Mapping[str, np.ndarray | np.generic],
    side_b: Mapping[str, np.ndarray | np.generic],
    frechet_method: str,
    kid: bool = True,
) -> dict[str, float | int]:
    """FID between two sides' statistics; with both sides' features, precision, recall, density and coverage
    of A against B (B the reference: precision is the fraction of A inside B's manifold) and KID if asked."""
    result = {
        **scores_against(side_b, side_a, frechet_method, kid),
        "n_a": int(side_a["count"]) if "count" in side_a else None,  # None: a statistics file without one
        "n_b": int(side_b["count"]) if "count" in side_b else None,
    }
    return result
