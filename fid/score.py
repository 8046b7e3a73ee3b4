"""One FID run: the reference side's statistics (cached) and one scored sample set, as FidSettings say."""

import dataclasses
import hashlib
import os
import time
from collections.abc import Mapping

import numpy as np

import common
from fid.diversity import DENSITY_COVERAGE_K, PRECISION_RECALL_K, diversity, knn_radii
from fid.features import content_digest, extract_features, load_source, pixel_batches, scored_count
from fid.frechet import (
    frechet_distance,
    kernel_inception_distance,
    scored_and_whole_statistics,
    scored_subset,
)


@dataclasses.dataclass(frozen=True)
class FidSettings:
    """How compute_fid.py scores: built from its flags (common.settings_from), whose defaults are the authors'."""

    run_dir: str  # where fid.json and the reference statistics' cache go
    reference: str  # a data set name, an .npz or a folder
    num_samples: int  # per side
    reference_split: str
    data_path: str | None
    jpeg_round_trip: bool
    drop_remainder: int  # score a multiple of this many images per side (their batches of 64)
    input_convention: str
    batch_size: int  # images per Inception call
    frechet_method: str
    kid: bool
    rescore: bool


def reference_statistics(
    settings: FidSettings, weights_path: str, weights_hash: str, split: str | None = None
) -> dict[str, np.ndarray | np.generic]:
    """mu, sigma (and features for KID) of the reference side (`split` of a data set; default
    settings.reference_split), cached in the run directory under a key of its content: the images'
    SHA-256, the weights' and the settings that change the features."""
    images = load_source(
        settings.reference,
        split or settings.reference_split,
        settings.num_samples,
        settings.data_path,
        settings.jpeg_round_trip,
    )
    n, total = scored_count(len(images), settings.drop_remainder), len(images)
    images_sha256 = content_digest(images)
    key = hashlib.sha256(
        f"{images_sha256} {weights_hash} {settings.input_convention} {n}".encode()
    ).hexdigest()
    cache = os.path.join(settings.run_dir, f"fid_reference_{key[:16]}.npz")
    if os.path.exists(cache):
        with np.load(cache) as stored:
            if str(stored["key"]) == key and "radii_3" in stored:  # older caches lack the diversity radii
                return {k: stored[k] for k in stored.keys()}
    features = extract_features(
        pixel_batches(images, settings.batch_size),
        images.shape[1:],
        weights_path,
        total,
        "reference",
        settings.input_convention,
    )
    (mu, sigma), (mu_whole_set, sigma_whole_set) = scored_and_whole_statistics(features, n)
    stats = {
        "mu": mu,
        "sigma": sigma,
        "count": np.int64(n),
        "mu_whole_set": mu_whole_set,
        "sigma_whole_set": sigma_whole_set,
        "count_whole_set": np.int64(total),
        "weights_hash": np.str_(weights_hash),
        "images_sha256": np.str_(images_sha256),
        "key": np.str_(key),
    }
    # the scored features and their nearest-neighbour radii: precision, recall, density and coverage
    stats["features"] = features[scored_subset(total, n)]
    radii = knn_radii(stats["features"], (PRECISION_RECALL_K, DENSITY_COVERAGE_K))
    stats["radii_3"], stats["radii_5"] = radii[PRECISION_RECALL_K], radii[DENSITY_COVERAGE_K]
    common.save_npz(cache, **stats)
    return stats


def score_set(
    path: str,
    reference: Mapping[str, np.ndarray | np.generic],
    settings: FidSettings,
    weights_path: str,
    weights_hash: str,
    earlier: dict,
    scored: dict[str, tuple[np.ndarray, dict[str, float]]],
    train_reference: Mapping[str, np.ndarray | np.generic] | None = None,
    others: Mapping[str, dict] | None = None,
) -> dict | None:
    """fid.json's entry for one sample file or folder, or None when `earlier` already holds it for the same
    images, reference and settings (and not settings.rescore). Files holding the same images are scored
    once: within a run through `scored` (content digest -> features and statistics, shared across calls),
    across runs through `others` (fid.json's other entries). With `train_reference` (statistics of training
    images), the entry has fid_train_reference too."""
    import keras

    started = time.time()
    label = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
    images = load_source(path, "train", settings.num_samples)
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
        features = extract_features(
            pixel_batches(images, settings.batch_size),
            images.shape[1:],
            weights_path,
            total,
            label,
            settings.input_convention,
        )
        statistics_scored, statistics_whole_set = scored_and_whole_statistics(features, n)
        fids = {}
        fids["fid"], fids["fid_whole_set"] = distances(
            reference, statistics_scored, statistics_whole_set, n, total, settings.frechet_method
        )
        if train_reference is not None:
            fids["fid_train_reference"], fids["fid_train_reference_whole_set"] = distances(
                train_reference, statistics_scored, statistics_whole_set, n, total, settings.frechet_method
            )
            fids["train_reference_n"] = int(train_reference["count"])
        fids.update(
            diversity(
                reference["features"],
                features[scored_subset(total, n)],
                {PRECISION_RECALL_K: reference["radii_3"], DENSITY_COVERAGE_K: reference["radii_5"]},
            )
        )
        scored[digest] = (features, fids)
    else:
        print(f"{label}: the same images as a set scored above; its features are reused, and its FIDs")
    features, fids = scored[digest]
    entry = {
        **fids,
        "samples": path,
        **identity,
        "backend": keras.backend.backend(),
        "device": common.device_description(),
        "seconds": round(time.time() - started, 2),
    }
    if settings.kid:
        entry["kid"], entry["kid_std"] = kernel_inception_distance(
            reference["features"], features[scored_subset(total, n)]
        )
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
    if total == n and int(reference["count_whole_set"]) == int(reference["count"]):
        return fid, fid
    return fid, frechet_distance(
        reference["mu_whole_set"], reference["sigma_whole_set"], *statistics_whole_set, method=method
    )
