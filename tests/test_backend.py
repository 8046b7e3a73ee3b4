"""vaevar/backend.py: the Keras backend's choice, made by each script in its first lines, and nowhere else."""

import json
import os
import subprocess
import sys

from tests.conftest import ROOT
from vaevar import backend


def test_backend_choice():
    """KERAS_BACKEND unset: JAX when it sees a GPU (the device query mocked) or TensorFlow is missing, else
    Keras' own default; set: the user's, whatever the devices and packages."""
    everything = {"tensorflow", "jax"}.__contains__
    without_tensorflow = {"jax"}.__contains__
    assert backend.choose_backend({}, gpu_query=lambda: True) == "jax"
    assert backend.choose_backend({}, lambda: False, everything) is None
    assert backend.choose_backend({}, lambda: False, without_tensorflow) == "jax"
    assert backend.choose_backend({}, lambda: False, {"tensorflow"}.__contains__) is None
    assert backend.choose_backend({}, lambda: False, set().__contains__) is None  # Keras says what is missing
    assert backend.choose_backend({"KERAS_BACKEND": "tensorflow"}, lambda: False, without_tensorflow) == (
        "tensorflow"
    )
    assert backend.choose_backend({"KERAS_BACKEND": "tensorflow"}, gpu_query=lambda: True) == "tensorflow"
    assert backend.choose_backend({"KERAS_BACKEND": "jax"}, gpu_query=lambda: False) == "jax"
    assert backend.choose_backend({"KERAS_BACKEND": ""}, gpu_query=lambda: True) == "jax"
    # without a JAX GPU plugin the query answers at once, without importing JAX
    if not any(__import__("importlib.util").util.find_spec(name) for name in backend.JAX_GPU_PLUGINS):
        assert backend.jax_sees_gpu() is False


def in_a_fresh_process(code):
    """What `code` prints as JSON, run in a new Python without Keras loaded and without the backend variables."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_choose_sets_the_backend_before_keras_and_never_after():
    """choose(): JAX where a GPU is seen, else nothing but the log level and oneDNN; once Keras is imported,
    nothing; a variable the user set stays."""
    chosen = in_a_fresh_process(
        "import json; from vaevar import backend\n"
        "seen, unseen = {}, {}\n"
        "everything = lambda name: True\n"
        "backend.choose(seen, lambda: True, everything); backend.choose(unseen, lambda: False, everything)\n"
        "no_tf = {}; backend.choose(no_tf, lambda: False, {'jax'}.__contains__)\n"
        "import keras\n"
        "late = {}; backend.choose(late, gpu_query=lambda: True)\n"
        "print(json.dumps([seen, unseen, no_tf, late]))"
    )
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "1"}
    assert chosen == [dict(quiet, KERAS_BACKEND="jax"), quiet, dict(quiet, KERAS_BACKEND="jax"), quiet]
    mine = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    backend.choose(mine, lambda: False, lambda name: True)
    assert mine["TF_ENABLE_ONEDNN_OPTS"] == "0"  # the user's choice stays


def test_without_tensorflow_the_scripts_choose_jax():
    """A machine with JAX and no TensorFlow (made unimportable), KERAS_BACKEND unset: a script's first call
    chooses JAX, where `import keras` alone would fail looking for TensorFlow."""
    chosen = in_a_fresh_process(
        "import json, os, sys\n"
        "sys.modules['tensorflow'] = None\n"  # import tensorflow raises; find_spec answers None
        "from vaevar import backend\n"
        "backend.choose(gpu_query=lambda: False)\n"
        "import keras\n"
        "print(json.dumps([os.environ.get('KERAS_BACKEND'), keras.backend.backend()]))"
    )
    assert chosen == ["jax", "jax"]


def test_importing_the_library_changes_no_environment_variable():
    """No import with side effects: every module of the vaevar package, imported after the frameworks (which
    set variables of their own when imported), leaves os.environ as it was."""
    changed = in_a_fresh_process(
        "import importlib, json, os, pkgutil\n"
        "import keras, numpy, scipy\n"
        "import vaevar\n"
        "before = dict(os.environ)\n"
        "names = [m.name for m in pkgutil.walk_packages(vaevar.__path__, 'vaevar.')]\n"
        "changed = {}\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "    if dict(os.environ) != before:\n"
        "        changed[name] = sorted(set(os.environ.items()) ^ set(before.items()))\n"
        "        before = dict(os.environ)\n"
        "print(json.dumps([len(names), changed]))"
    )
    count, by_module = changed
    assert count > 25 and by_module == {}
