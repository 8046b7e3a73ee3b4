"""FID, precision and recall with the standard 2015-12-05 TensorFlow Inception: two sets, or a trained run.

    python compute_fid.py PATH_A PATH_B          # two folders / .zip / .npz of images, or statistics files
    python compute_fid.py PATH --save-stats B.npz  # PATH's statistics, for later comparisons
    python compute_fid.py --dataset cifar10      # a run: score RUN_DIR/samples/*.npz into fid.json
    python compute_fid.py --list-stats           # the cached statistics and their settings

Two sets: prints FID and, with images on both sides, improved precision / recall (k = 3) and density /
coverage (k = 5) of A against B; writes nothing but the statistics cache ($VAEVAR_CACHE_DIR, else
~/.cache/vaevar), keyed by content. Every image is scored (or a seeded random --num-samples), with TTUR's
input convention: the numbers of the original TensorFlow FID code. Images as they come: several sizes
(each resized to 299 with the graph's own resize), grayscale, NCHW arrays.

A run: the authors' protocol by default. The reference is NUM_SAMPLES random test images (the REC inputs),
[0, 1] inputs scaled x * 2 - 1, 9,984 of 10,000 scored (whole batches of 64); the same features give the
FID of the whole 10,000 too (`fid_whole_set`). Writes RUN_DIR/fid.json after each set and
RUN_DIR/fid_table.md (plain, renormalized, the gain, the paper's numbers). A rerun skips the sets fid.json
already holds for the same images, reference and settings.

pool_3 features (2048) of the Keras port of classify_image_graph_def.pb, on the TensorFlow or JAX
backend; the FID stack lives in vaevar/fid/ (its __init__ says what is where).
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import os

from vaevar import cli, data, errors, files, layout
from vaevar.fid.diversity import DENSITY_COVERAGE_K
from vaevar.fid.features import check_sample_file
from vaevar.fid.frechet import KID_SUBSETS, check_method
from vaevar.fid.score import (
    RUN_DEFAULTS,
    FidSettings,
    check_statistics_output,
    compare,
    is_statistics_file,
    list_statistics,
    read_side,
    reference_statistics,
    save_statistics,
    score_set,
    side_statistics,
    statistics_cache,
)
from vaevar.fid.table import fid_table, sampler_table
from vaevar.fid.weights import resolve_weights, sha256

DATASET = "cifar10"  # the run's data set (its test split is the default reference)
DATA_PATH = None  # local data file; default the run's first stage's (else VAEVAR_DATA_DIR, else tfds)
RUN_DIR = None  # default: runs/<dataset>
SAMPLES = None  # comma-separated .npz files or image folders; default: RUN_DIR/samples/*.npz
REFERENCE = None  # data set name, .npz or folder; default: DATASET
REFERENCE_SPLIT = "test"  # the authors': NUM_SAMPLES random test images (the REC inputs too)
JPEG_ROUND_TRIP = True  # CIFAR-10 from a lossless source: JPEG quality 75 and back, as the authors' data
NUM_SAMPLES = None  # per side, a seeded random subset; default: all of two sets, 10,000 in a run
INPUT_CONVENTION = None  # authors: x * 2 - 1 on [0, 1] (TF-GAN; a run's default) | ttur: (x - 128) / 128
DROP_REMAINDER = None  # a run scores a multiple of this many per side (default 64: theirs); two sets: all
BATCH_SIZE = 250  # images per Inception call (speed and memory only: bench/bench_fid_batch.py)
INCEPTION_WEIGHTS = None  # or $VAEVAR_INCEPTION_WEIGHTS
FRECHET_METHOD = None  # sqrtm (TTUR, scipy; default) | eig (eigenvalues, faster; --quick's)
KID = True  # the unbiased KID beside FID, on the same features (docs/fid.md); --no-kid: FID alone
QUICK = False  # 500 samples per side and eig distances: a smoke test, not comparable numbers
TRAIN_REFERENCE = True  # also score against NUM_SAMPLES random training images (their 7965c70 code)
RESCORE = False  # score every set again, even one fid.json already holds for the same images and settings
STAGE2_EPOCH = 0  # a run: score generate.py --stage2-epoch E's samples (fid.json beside them); 0: final
STAGE1_EPOCH = 0  # a run: score generate.py --stage1-epoch E's samples (fid.json beside them); 0: final
SAVE_STATS = None  # with one PATH: write its mu, sigma, count, feature settings and images' SHA-256 here
LIST_STATS = False  # list the cached statistics with their settings, and stop
_PAIR_DEFAULTS = {  # and for two sets, as pytorch-fid and the TTUR code score
    "num_samples": None,
    "input_convention": "ttur",
    "drop_remainder": 1,
}


# Flags of the run form only; the two-set form says it ignores those given.
_RUN_ONLY = (
    "dataset",
    "data_path",
    "run_dir",
    "samples",
    "reference",
    "reference_split",
    "jpeg_round_trip",
    "train_reference",
    "rescore",
    "stage2_epoch",
    "stage1_epoch",
)

_PATHS_HELP = (
    "two sets to compare (folders, .zip or .npz of images, statistics files), or one with --save-stats"
)


def sample_files(args):
    run_paths = layout.RunPaths(args.run_dir, args.stage2_epoch, args.stage1_epoch)
    if not args.samples:
        folder = run_paths.samples
        found = (run_paths.sample(name) for name in layout.SAMPLE_SETS + layout.EXTRA_SAMPLERS)
        paths = [path for path in found if os.path.exists(path)]
        if not paths:
            raise errors.VaevarError(f"no sample arrays in {folder}: run generate.py first or pass --samples")
        return paths
    paths = [s for s in args.samples.split(",") if s]
    own = os.path.realpath(run_paths.samples)
    for path in paths:
        label = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
        if (
            label in layout.SAMPLE_SETS + layout.EXTRA_SAMPLERS
            and os.path.realpath(os.path.dirname(path)) != own
        ):
            raise errors.VaevarError(
                f"--samples {path} would overwrite the run's '{label}' entry in {results_file(args)}: "
                f"rename it, or compare two sets with compute_fid.py {path} REFERENCE"
            )
    return paths


def results_file(args):
    """RUN_DIR/fid.json; a kept stage's beside its samples."""
    return layout.RunPaths(args.run_dir, args.stage2_epoch, args.stage1_epoch).fid_results


def check_settings(args):
    if args.quick and args.num_samples is None:  # both forms: a smoke test's count, unless one is given
        args.num_samples = data.QUICK_SETTINGS["fid_samples"]
    defaults = _PAIR_DEFAULTS if args.paths else RUN_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("num_samples", "drop_remainder"):
        value = getattr(args, name)
        if value is not None and not isinstance(value, int):
            raise errors.VaevarError(f"--{name.replace('_', '-')} {value!r}: give a whole number")
    args.frechet_method = args.frechet_method or ("eig" if args.quick else "sqrtm")
    check_method(args.frechet_method)
    cli.require_positive(
        args,
        "num_samples",
        "batch_size",
        "drop_remainder",
        "stage2_epoch",
        "stage1_epoch",
        allow_zero=("stage2_epoch", "stage1_epoch"),
    )
    if args.num_samples is not None and args.num_samples < 2:
        raise errors.VaevarError("--num-samples must be at least 2 for FID")
    if args.paths:
        ignored = [
            f"--{name.replace('_', '-')}"
            for name in _RUN_ONLY
            if getattr(args, name) != globals()[name.upper()]
        ]
        if ignored:
            print(f"note: comparing sets ignores {', '.join(ignored)}: they set up the scoring of a run")
        if args.save_stats and len(args.paths) != 1:
            raise errors.VaevarError(
                f"--save-stats takes one PATH, got {len(args.paths)}: {' '.join(args.paths)}"
            )
        if args.save_stats:
            check_statistics_output(args.save_stats)  # before minutes of features
        if not args.save_stats and len(args.paths) != 2:
            raise errors.VaevarError(f"give two sets to compare (PATH_A PATH_B), got {len(args.paths)}")
        for path in args.paths:
            if not os.path.exists(path):
                raise errors.VaevarError(
                    f"{path} not found: give a folder, .zip or .npz of images, or a statistics file"
                )
        return args
    if args.save_stats:
        raise errors.VaevarError(
            "--save-stats takes the PATH to describe: compute_fid.py PATH --save-stats OUT.npz"
        )
    data.dataset(args.dataset)
    args.reference = args.reference or args.dataset
    args.run_dir = layout.RunPaths.of(args.dataset, args.run_dir).root
    layout.RunPaths(args.run_dir).check_dataset(args.dataset)
    if args.reference == args.dataset:  # the run's own data: stage 1's file, and for images its split
        recorded_path, args.folder = data.recorded_source(args.run_dir)
        args.data_path = args.data_path or recorded_path
    return args


def compare_sets(args):
    """FID (and precision / recall / density / coverage) of PATH_A against PATH_B, or --save-stats."""
    if args.save_stats and is_statistics_file(args.paths[0]):
        raise errors.VaevarError(f"{args.paths[0]} already is a statistics file: give images to --save-stats")
    read = [read_side(path, args.num_samples) for path in args.paths]  # bad input fails before the weights
    weights_path = resolve_weights(args.inception_weights)
    settings = cli.settings_from(args, FidSettings, reference=args.paths[-1], reference_split="train")
    sides = [
        side_statistics(side, path, settings, weights_path, sha256(weights_path))
        for side, path in zip(read, args.paths)
    ]
    if args.save_stats:
        save_statistics(args.save_stats, sides[0])
        print(f"statistics of {int(sides[0]['count'])} images of {args.paths[0]} in {args.save_stats}")
        return
    result = compare(*sides, args.frechet_method, args.kid)
    n_a, n_b = ("unknown" if n is None else n for n in (result["n_a"], result["n_b"]))
    print(f"FID {result['fid']:.4f}  (n = {n_a} and {n_b}, input convention {args.input_convention})")
    if "precision" in result:
        print(
            "precision {precision:.4f}  recall {recall:.4f}  (k = 3)   density {density:.4f}  "
            "coverage {coverage:.4f}  (k = 5): A against B".format(**result)
        )
    else:
        print(
            "no precision / recall: they need images on both sides (a statistics file holds no features), "
            f"more than {DENSITY_COVERAGE_K} of each"
        )
    if "kid" in result:
        print(kid_text(result))


def kid_text(scores: dict) -> str:
    """KID ± its std, and the subsets each is over (fid.json entries older than kid_std_subset: neither)."""
    text = f"KID {scores['kid']:.5f} ± {scores['kid_std']:.5f}"
    if "kid_std_subset" not in scores:
        return text
    if scores["kid_std_subset"] == scores["kid_subset"]:
        return f"{text}  ({KID_SUBSETS} subsets of {scores['kid_subset']} a side)"
    # a side of at most 1,000: the mean's subsets hold all of it, the std's half (frechet.kid_std_subset)
    return (
        f"{text}  (mean over {KID_SUBSETS} subsets of {scores['kid_subset']} a side, "
        f"± the SD over {KID_SUBSETS} subsets of {scores['kid_std_subset']} a side)"
    )


def list_stats():
    rows = list_statistics()
    print(f"{len(rows)} cached statistics in {statistics_cache()}")
    for row in rows:
        settings = f"{row.get('input_convention', '?')}, weights {row.get('weights_hash', '?')[:12]}"
        print(
            f"{row.get('created', '?'):<16}  n={row.get('count', '?'):<6}  {settings}  "
            f"images {row.get('images_sha256', '?')[:12]}  {row.get('source', '')}  ({os.path.basename(row['file'])})"
        )


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv, positional=("paths", _PATHS_HELP))
    if args.list_stats:
        return list_stats()
    args = check_settings(args)
    print(backend.runtime_line(), flush=True)
    if args.paths:
        return compare_sets(args)
    os.makedirs(args.run_dir, exist_ok=True)
    sample_paths = sample_files(args)
    for path in sample_paths:
        if path.endswith(".npz"):
            check_sample_file(path)  # before the weights and the reference, which take minutes
    weights_path = resolve_weights(args.inception_weights)
    weights_hash = sha256(weights_path)
    settings = cli.settings_from(args, FidSettings)
    reference = reference_statistics(settings, weights_path, weights_hash)
    train_reference = None
    if args.train_reference and args.reference in data.DATASETS and args.reference_split != "train":
        train_reference = reference_statistics(settings, weights_path, weights_hash, split="train")
    results_path = results_file(args)
    results = files.load_json(results_path) if os.path.exists(results_path) else {}
    scored = {}  # content digest -> features and statistics: identical sample files are scored once
    for path in sample_paths:
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
        files.save_json(results_path, results)
        kid = f"  {kid_text(entry)}" if "kid" in entry else ""
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
    run_paths = layout.RunPaths(args.run_dir, args.stage2_epoch, args.stage1_epoch)
    table_path = run_paths.fid_table
    table = fid_table(results, args.dataset)
    summary_path = run_paths.samples_summary
    if any(name in results for name in layout.EXTRA_SAMPLERS) and os.path.exists(summary_path):
        table += "\n" + sampler_table(results, files.load_json(summary_path))
    files.save_text(table_path, table)
    print(f"results in {results_path}, the paper's table for this run in {table_path}")


if __name__ == "__main__":
    errors.run_main(main)
