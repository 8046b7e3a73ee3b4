"""The layout: scripts at the top, library modules below them, imports only running downwards."""

import ast
import glob
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# A library module may import only the layers listed for it (its own package included).
LAYERS = {
    "common": set(),
    "data": {"common"},
    "analysis": set(),
    "models": {"models"},
    "fid": {"common", "data", "fid"},
    "training": {"common", "data", "models"},
    "sampling": {"common", "training"},
    "fast_training": {"common", "training"},
    "bench": {"common", "data", "models", "fid", "training", "fast_training", "bench"},
}


def project_modules():
    """module name -> path, for every project .py file outside tests/."""
    modules = {}
    for path in glob.glob(os.path.join(ROOT, "*.py")) + glob.glob(os.path.join(ROOT, "*", "*.py")):
        relative = os.path.relpath(path, ROOT)
        if relative.startswith(("tests", ".venv", "runs")):
            continue
        name = relative[:-3].replace(os.sep, ".")
        modules[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return modules


def is_script(path):
    with open(path) as f:
        return 'if __name__ == "__main__":' in f.read()


def local_imports(path, modules):
    """Every project module `path` imports, at top level or inside functions."""
    tops = {name.split(".")[0] for name in modules}
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] in tops and name in modules}
    return found


def test_no_script_imports_a_script_and_no_import_runs_back_up():
    modules = project_modules()
    scripts = {name for name, path in modules.items() if "." not in name and is_script(path)}
    assert {"train_first_stage", "train_second_stage", "generate", "compute_fid", "reproduce"} <= scripts
    problems = []
    for name, path in sorted(modules.items()):
        imported = local_imports(path, modules)
        if name in scripts:
            problems += [f"script {name} imports script {other}" for other in imported & scripts]
            continue
        allowed = LAYERS.get(name.split(".")[0])
        assert allowed is not None, f"library module {name} has no layer in LAYERS"
        problems += [f"{name} imports {other}" for other in imported
                     if other.split(".")[0] not in allowed]
    assert not problems


SCRIPTS = ["train_first_stage.py", "train_second_stage.py", "generate.py", "compute_fid.py", "variance_loss.py",
           "reproduce.py", "convert_inception.py", "validate_fid.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_flag_is_documented_in_its_script(script):
    """--help is the reference for the constants: each one has a comment, and nothing else is a flag."""
    import common

    source = open(os.path.join(ROOT, script)).read()
    constants = re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", source, re.M)
    assert constants
    comments = common._constant_comments(os.path.join(ROOT, script))
    undocumented = [name for name in constants if name not in comments]
    assert not undocumented, f"{script}: constants without a comment: {undocumented}"
    not_settings = [name for name in constants if re.search(r"URL|HASH|SHA|_NAME$|_FILE$", name)]
    assert not not_settings, f"{script}: URLs, hashes and file names belong in a library module"


def test_help_lists_the_flags_with_their_comments():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "compute_fid.py"), "--help"], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0
    assert "--num-samples" in result.stdout and "per side" in result.stdout


def test_the_tracked_files_leave_room_for_a_gpu_commands_data():
    """A device command carries at most 64 MiB, the tracked files included; the first stage's command also
    carries the training images (49.4 MiB) and the Keras wheels (2.8 MiB): bench/gpu_cifar10.sh."""
    listed = subprocess.run(["git", "ls-files", "-z"], capture_output=True, cwd=ROOT)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    paths = [p for p in listed.stdout.decode().split("\0") if p and os.path.isfile(os.path.join(ROOT, p))]
    tracked = sum(os.path.getsize(os.path.join(ROOT, p)) for p in paths)
    assert tracked < 64 * 2 ** 20 - 49.4 * 2 ** 20 - 2.8 * 2 ** 20 - 0.5 * 2 ** 20, \
        f"tracked files {tracked / 2 ** 20:.1f} MiB: a GPU command could not carry them with its data"


def test_the_lock_pins_every_requirement_within_its_range():
    """requirements-lock.txt (what the README and CI install) names one exact version of every package of
    requirements.txt, inside the range requirements.txt allows, extras' packages included."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    def lines(name):
        with open(os.path.join(ROOT, name)) as f:
            return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]

    pinned = {}
    for line in lines("requirements-lock.txt"):
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"not an exact pin: {line}"
        pinned[canonicalize_name(requirement.name)] = specifiers[0].version
    for line in lines("requirements.txt"):
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is in requirements.txt but not in the lock"
        assert requirement.specifier.contains(pinned[name]), f"the lock's {name}=={pinned[name]} is outside {line}"
    assert "jaxlib" in pinned  # jax[cpu]'s extra
