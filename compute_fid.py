"""FID (and optionally KID) with the standard 2015-12-05 TensorFlow Inception.

    python compute_fid.py --dataset cifar10                 # score RUN_DIR/samples/*.npz
    python compute_fid.py --samples a.npz --reference cifar10

pool_3 features (2048) of the Keras port of classify_image_graph_def.pb, on
the TensorFlow or JAX backend. The FID stack lives in fid/: network.py (the
port), resize.py, weights.py (where the weights come from), torchscript.py and
graph.py (their readers), features.py, frechet.py, score.py, table.py.
The authors' protocol by default: the reference is NUM_SAMPLES random test
images (the REC inputs), [0, 1] inputs scaled x * 2 - 1, 9,984 of 10,000
scored (whole batches of 64); the same features give the FID of the whole
10,000 too (`fid_whole_set`). Reference statistics are cached in the run
directory. Writes RUN_DIR/fid.json after each set and RUN_DIR/fid_table.md
(plain, renormalized, the gain, the paper's numbers). A rerun skips the sets
fid.json already holds for the same images, reference and settings.
"""

import glob
import os

import common
import data
from fid.features import check_sample_file
from fid.frechet import check_method
from fid.score import FidSettings, reference_statistics, score_set
from fid.table import fid_table, sampler_table
from fid.weights import resolve_weights, sha256

DATASET = "cifar10"  # the run's data set (its test split is the default reference)
DATA_PATH = None  # local data file (else VAEVAR_DATA_DIR, else tensorflow-datasets)
RUN_DIR = None  # default: runs/<dataset>
SAMPLES = None  # comma-separated .npz files or image folders; default: RUN_DIR/samples/*.npz
REFERENCE = None  # data set name, .npz or folder; default: DATASET
REFERENCE_SPLIT = "test"  # the authors': NUM_SAMPLES random test images (the REC inputs too)
JPEG_ROUND_TRIP = True  # CIFAR-10 from a lossless source: JPEG quality 75 and back, as the authors' data
NUM_SAMPLES = 10000  # per side
INPUT_CONVENTION = "authors"  # authors: [0, 1] floats as x * 2 - 1 (TF-GAN) | ttur: (x - 128) / 128
DROP_REMAINDER = 64  # score a multiple of this many images per side (theirs: batches of 64); 1: all
BATCH_SIZE = 250  # images per Inception call (speed and memory only: bench/bench_fid_batch.py)
INCEPTION_WEIGHTS = None  # or $VAEVAR_INCEPTION_WEIGHTS
FRECHET_METHOD = None  # sqrtm (TTUR, scipy; default) | eig (eigenvalues, faster; --quick's)
KID = False  # also the unbiased KID (same features)
QUICK = False  # 500 samples per side and eig distances: a smoke test, not comparable numbers
TRAIN_REFERENCE = True  # also score against NUM_SAMPLES random training images (their 7965c70 code)
RESCORE = False  # score every set again, even one fid.json already holds for the same images and settings


def sample_files(args):
    if args.samples:
        return [s for s in args.samples.split(",") if s]
    folder = os.path.join(args.run_dir, common.SAMPLES_DIR)
    found = {os.path.splitext(os.path.basename(p))[0]: p for p in glob.glob(os.path.join(folder, "*.npz"))}
    files = [found[k] for k in common.SAMPLE_SETS + common.EXTRA_SAMPLERS if k in found]
    if not files:
        raise common.VaevarError(f"no sample arrays in {folder}: run generate.py first or pass --samples")
    return files


def check_settings(args):
    if args.quick and args.num_samples == NUM_SAMPLES:
        args.num_samples = data.QUICK_SETTINGS["fid_samples"]
    args.frechet_method = args.frechet_method or ("eig" if args.quick else "sqrtm")
    check_method(args.frechet_method)
    common.require_positive(args, "num_samples", "batch_size", "drop_remainder")
    if args.num_samples < 2:
        raise common.VaevarError("--num-samples must be at least 2 for FID")
    data.dataset(args.dataset)
    args.reference = args.reference or args.dataset
    args.run_dir = common.run_dir_of(args.dataset, args.run_dir)
    common.check_dataset(args.run_dir, args.dataset)
    return args


def main(argv=None):
    args = check_settings(common.parse_constants(globals(), __doc__, argv))
    print(common.runtime_line(), flush=True)
    os.makedirs(args.run_dir, exist_ok=True)
    files = sample_files(args)
    for path in files:
        if path.endswith(".npz"):
            check_sample_file(path)  # before the weights and the reference, which take minutes
    weights_path = resolve_weights(args.inception_weights)
    weights_hash = sha256(weights_path)
    settings = common.settings_from(args, FidSettings)
    reference = reference_statistics(settings, weights_path, weights_hash)
    train_reference = None
    if args.train_reference and args.reference in data.DATASETS and args.reference_split != "train":
        train_reference = reference_statistics(settings, weights_path, weights_hash, split="train")
    results_path = os.path.join(args.run_dir, "fid.json")
    results = common.load_json(results_path) if os.path.exists(results_path) else {}
    scored = {}  # content digest -> features and statistics: identical sample files are scored once
    for path in files:
        label = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
        entry = score_set(
            path,
            reference,
            settings,
            weights_path,
            weights_hash,
            results.get(label, {}),
            scored,
            train_reference,
            others=results,
        )
        if entry is None:
            print(
                f"FID {label:<12} {results[label]['fid']:8.2f}  (in {results_path} for the same images and "
                f"settings; --rescore to score again)"
            )
            continue
        results[label] = entry
        common.save_json(results_path, results)
        kid = f"  KID {entry['kid']:.5f}" if args.kid else ""
        whole = (
            f"; whole sets, n={entry['n_whole_set']}: {entry['fid_whole_set']:.2f}"
            if entry["n_whole_set"] != entry["n"]
            else ""
        )
        train = f"; against training images: {entry['fid_train_reference']:.2f}" if train_reference else ""
        print(
            f"FID {label:<12} {entry['fid']:8.2f}  (n={entry['n']}, reference {args.reference} "
            f"n={entry['reference_n']}{whole}{train}){kid}"
        )
    table_path = os.path.join(args.run_dir, "fid_table.md")
    table = fid_table(results, args.dataset)
    summary_path = os.path.join(args.run_dir, common.SAMPLES_DIR, "summary.json")
    if any(name in results for name in common.EXTRA_SAMPLERS) and os.path.exists(summary_path):
        table += "\n" + sampler_table(results, common.load_json(summary_path))
    with common.atomic_path(table_path) as tmp:
        with open(tmp, "w") as f:
            f.write(table)
    print(f"results in {results_path}, the paper's table for this run in {table_path}")


if __name__ == "__main__":
    common.run_main(main)
