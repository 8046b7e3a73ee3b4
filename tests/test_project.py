"""The project: scripts at the top, library modules below them, imports only running downwards."""

import ast
import glob
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# A library module may import only the layers listed for it (its own package included). Library modules live
# in the vaevar package; a layer is a module's name inside it (vaevar.fid.score: fid).
BASE = {"errors", "files", "layout", "backend"}  # the ground floor: what every library module may use
LIBRARY = {
    "vaevar": set(),  # the package's face: a docstring, no imports
    "errors": set(),
    "backend": set(),
    "files": {"errors"},
    "layout": {"errors", "files"},
    "cli": {"errors"},  # the scripts' flags: no library module below the programs imports it
    "runtime": {"errors"},  # a script's RUNTIME constant: no Keras
    "image_files": BASE,
    "grids": BASE,
    "data": BASE | {"image_files", "data"},
    "variance_measures": {"fid"},
    "scale_search": {"errors", "files"},  # the sweep's grid (pure Python) and its kept points
    "seeds": BASE,
    "models": {"models"},
    "fid": BASE | {"data", "image_files", "fid"},
    "run_folder": BASE | {"models"},
    "kept_models": BASE | {"run_folder"},  # --keep-models-at: its epochs and the copies' measure
    "cpu_time": BASE,
    "training": BASE | {"data", "models", "run_folder", "cpu_time", "runtime"},
    "renormalization": BASE | {"training"},
    "samplers": BASE | {"renormalization"},
    "fast_training": BASE | {"training", "run_folder", "runtime"},
    "run": BASE | {"data", "image_files", "renormalization", "run_folder", "training", "fid"},
}
# bench, experiments and tools: programs over the library (run with python -m or from tools/), never the scripts
PROGRAMS = {"bench", "experiments", "tools"}
LAYERS = dict(
    LIBRARY,
    **{program: set(LIBRARY) - {"vaevar"} | {program} for program in PROGRAMS},
)


def layer(name):
    """The layer of a module name: vaevar.fid.score -> fid, vaevar -> vaevar, bench.bench_speed -> bench."""
    parts = name.split(".")
    return parts[1] if parts[0] == "vaevar" and len(parts) > 1 else parts[0]


def project_modules():
    """module name -> path, for every project .py file outside tests/."""
    modules = {}
    for path in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True):
        relative = os.path.relpath(path, ROOT)
        if relative.startswith(("tests", ".venv", "runs", "results")):
            continue
        name = relative[:-3].replace(os.sep, ".")
        modules[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
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
        allowed = LAYERS.get(layer(name))
        assert allowed is not None, f"library module {name} has no layer in LAYERS"
        problems += [
            f"{name} imports {other}"
            for other in imported
            if other != "vaevar" and layer(other) not in allowed
        ]
    assert not problems


def test_library_code_never_sees_the_command_line():
    """argparse lives in the scripts and common's parser; library functions take typed settings, never the
    parsed namespace (a parameter named args or namespace)."""
    modules = project_modules()
    problems = []
    for name, path in sorted(modules.items()):
        if is_script(path) or name.startswith(("bench", "experiments", "tools")):  # programs, with flags
            continue
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and name != "vaevar.cli":
                imported = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                )
                problems += [
                    f"{name} imports argparse" for module in imported if module.split(".")[0] == "argparse"
                ]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and name != "vaevar.cli":
                params = [a.arg for a in node.args.args + node.args.kwonlyargs]
                problems += [f"{name}.{node.name} takes {p}" for p in params if p in ("args", "namespace")]
    assert not problems


SCRIPTS = [
    "train_first_stage.py",
    "train_second_stage.py",
    "generate.py",
    "compute_fid.py",
    "variance_analysis.py",
    "reproduce.py",
    "sweep_latent_scale.py",
    "aggregate_runs.py",
    "tools/convert_inception.py",
    "tools/validate_fid.py",
]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_flag_is_documented_in_its_script(script):
    """--help is the reference for the constants: each one has a comment, and nothing else is a flag."""
    from vaevar import cli

    source = open(os.path.join(ROOT, script)).read()
    constants = re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", source, re.M)
    assert constants
    comments = cli._constant_comments(os.path.join(ROOT, script))
    undocumented = [name for name in constants if name not in comments]
    assert not undocumented, f"{script}: constants without a comment: {undocumented}"
    not_settings = [name for name in constants if re.search(r"URL|HASH|SHA|_NAME$|_FILE$", name)]
    assert not not_settings, f"{script}: URLs, hashes and file names belong in a library module"


def test_help_lists_the_flags_with_their_comments():
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "compute_fid.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0
    assert "--num-samples" in result.stdout and "per side" in result.stdout


def requirement_lines(name):
    """The requirements of a requirements file, its `-r` includes followed."""
    found = []
    with open(os.path.join(ROOT, name)) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line.startswith("-r "):
                found += requirement_lines(line[3:].strip())
            elif line:
                found.append(line)
    return found


def exact_pins(lock):
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pinned = {}
    for line in requirement_lines(lock):
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{lock}: not an exact pin: {line}"
        pinned[canonicalize_name(requirement.name)] = specifiers[0].version
    return pinned


@pytest.mark.parametrize(
    "requirements, lock",
    [("requirements.txt", "requirements-lock.txt"), ("requirements-cuda.txt", "requirements-cuda-lock.txt")],
)
def test_the_lock_pins_every_requirement_within_its_range(requirements, lock):
    """Each lock (what the README and CI install) names one exact version of every package of its requirements
    file, inside the range that file allows, extras' packages included."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pinned = exact_pins(lock)
    for line in requirement_lines(requirements):
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is in {requirements} but not in {lock}"
        assert requirement.specifier.contains(pinned[name]), (
            f"{lock}'s {name}=={pinned[name]} is outside {line}"
        )
    assert "jaxlib" in pinned  # jax[cpu]'s and jax[cuda12]'s


def test_the_cuda_lock_has_the_cpu_locks_versions():
    """The GPU set-up runs the code the CPU tests pass with: every package both locks name, the same version."""
    cpu, cuda = exact_pins("requirements-lock.txt"), exact_pins("requirements-cuda-lock.txt")
    assert {
        name: (cpu[name], cuda[name]) for name in cpu.keys() & cuda.keys() if cpu[name] != cuda[name]
    } == {}
    assert cpu.keys() <= cuda.keys() and "jax-cuda12-plugin" in cuda


def test_what_users_read_names_no_development_machine():
    """README, docs, bench, the scripts and the results' notes speak of the user's machines: no device leases,
    transfer limits or paths outside the repository (recorded JSON and logs keep the paths they were made with)."""
    paths = (
        ["README.md"]
        + glob.glob(os.path.join(ROOT, "docs", "*"))
        + glob.glob(os.path.join(ROOT, "bench", "*.py"))
        + glob.glob(os.path.join(ROOT, "experiments", "*.py"))
        + glob.glob(os.path.join(ROOT, "*.py"))
        + glob.glob(os.path.join(ROOT, "results", "*.md"))
        + glob.glob(os.path.join(ROOT, "results", "*", "command.txt"))
    )
    pattern = re.compile(r"\b(leases?|FILES_AT|64 MiB)\b|\.device_(data|runs|carry)|\.\./shared|--carry\b")
    found = [
        f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()[:80]}"
        for path in paths
        for number, line in enumerate(open(os.path.join(ROOT, path)), 1)
        if pattern.search(line)
    ]
    assert not found


def test_the_code_passes_ruff_lint_and_format():
    """pyproject.toml's ruff settings (the lock pins ruff): lint clean, and formatted as `ruff format` would."""
    for command in (["check", "--quiet", "."], ["format", "--check", "--quiet", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"ruff {command[0]}:\n{result.stdout[-3000:]}{result.stderr[-1000:]}"


def test_every_deliberate_breakage_still_applies():
    """tools/mutations.py's rows name text in the code: one that moved on without its row tests nothing, and
    the tool refuses it. Checked here so that the suite fails as soon as a change leaves a row stale."""
    from tools import mutations

    assert mutations.stale(ROOT, mutations.BREAKAGES) == []
    gone = [("gone", "vaevar/data/loading.py", "text that is nowhere in it", "", [])]
    assert mutations.stale(ROOT, gone) == ["gone (its text occurs 0 times)"]
    assert len({name for name, *_ in mutations.BREAKAGES}) == len(mutations.BREAKAGES)


def test_test_files_share_helpers_only_through_conftest():
    problems = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "**", "test_*.py"), recursive=True)):
        for node in ast.walk(ast.parse(open(path).read())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            problems += [
                f"{os.path.basename(path)} imports {n}"
                for n in names
                if n.startswith("tests.") and n != "tests.conftest"
            ]
    assert not problems
