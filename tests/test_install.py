"""The two installs: the deployment side (no torch, Python 3.8+, what a Jetson runs) and the training side.

- A static check (vermin) keeps the deployment modules on Python 3.8; the CLI's annotations are
  checked as evaluated, since Typer evaluates them at run time.
- A fresh virtual environment with the deployment install only (``pip install dgnet-edge``, no
  extras) on the oldest Python this machine has (3.8 where pyenv has it, as on JetPack 5) runs
  ``doctor``, ``demo``, ``gallery`` and ``report`` with an export made here by the training side.
- The deployment dependency set resolves to aarch64 wheels for Python 3.8, 3.10 and 3.12 (JetPack
  5, 6, 7), and on a Jetson pulls no pip OpenCV.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]

# Modules whose annotations are evaluated at run time on the deployment side: Typer reads the
# command signatures of every CLI module (the CLI imports them all, training commands included).
EVALUATED_ANNOTATIONS = ["dgnet_edge/cli"]
# Training-side modules that the deployment install never imports (they need torch, PyYAML or
# pydantic); every other module of the distribution is the deployment side.
TRAINING_MODULES = ("dgnet_edge.models", "dgnet_edge.training", "dgnet_edge.export.graphs",
                    "dgnet_edge.export.onnx_export", "dgnet_edge.export.pipeline", "dgnet_edge.calib.generator",
                    "dgnet_edge.calib.pipeline",
                    "dgnet_edge.checkpoint", "dgnet_edge.weights", "dgnet_edge.device", "dgnet_edge.swap_grid", "dgnet_edge.official_import",
                    "dgnet_edge.config", "dgnet_edge.visualize", "dgnet_edge.data.augment", "dgnet_edge.data.train_set",
                    "dgnet_edge.apps.quickstart", "dgnet_edge.runtime.torch_runner")
# Where each installed package's sources live in this tree (pyproject's package-dir).
SOURCE_DIRS = {"dgnet_edge": "dgnet_edge", "dgnet_edge.export": "export", "dgnet_edge.calib": "calib",
               "dgnet_edge.apps": "apps"}
JETPACK_PYTHONS = ("3.8", "3.10", "3.12")  # JetPack 5.1, 6.x, 7.x
AARCH64 = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_31_aarch64", "manylinux_2_34_aarch64")


def vermin(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("vermin", path=str(Path(sys.executable).parent)) or shutil.which("vermin")
    assert exe, "vermin is not installed (it is in the [dev] extra)"
    return subprocess.run([exe, "-t=3.8-", "--violations", "--no-tips", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def deployment_files() -> list[str]:
    """The source files of every deployment-side module, relative to the repository."""
    files = []
    for package, folder in SOURCE_DIRS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            module = ".".join((package, *[p for p in parts if p != "__init__"]))
            owner = max((p for p in SOURCE_DIRS if module == p or module.startswith(p + ".")), key=len)
            if owner == package and not module.startswith(TRAINING_MODULES):
                files.append(str(path.relative_to(REPO)))
    return files


def test_the_deployment_side_needs_no_more_than_python_3_8():
    files = deployment_files()
    assert "apps/camera/live/app.py" in files and "dgnet_edge/training/trainer.py" not in files
    plain = vermin(*files)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    evaluated = vermin("--eval-annotations", *EVALUATED_ANNOTATIONS)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr


BUILTIN_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}
TYPES = BUILTIN_GENERICS | {"int", "float", "str", "bytes", "bool", "object"}


def runtime_builtin_generics(path: Path) -> list[str]:
    """``tuple[int, int]``, ``Callable[...]`` from collections.abc and the like evaluated at run time (a
    type alias, a cast): vermin lets them pass, and on Python 3.8 they raise "... is not subscriptable"."""
    tree = ast.parse(path.read_text())
    generics = set(BUILTIN_GENERICS)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("collections", "collections.abc"):
            generics |= {alias.asname or alias.name for alias in node.names}
    in_annotation = set()
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            annotations = [x.annotation for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if x]
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in annotations:
            in_annotation |= {id(n) for n in ast.walk(annotation)} if annotation is not None else set()
    found = [node.lineno for node in ast.walk(tree)
             if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
             and node.value.id in generics and id(node) not in in_annotation]
    # A module-level type alias written as a union (`Seed = int | Sequence[int]`) needs 3.10.
    found += [node.lineno for node in tree.body
              if isinstance(node, ast.Assign) and isinstance(node.value, ast.BinOp) and isinstance(node.value.op, ast.BitOr)
              and any(isinstance(side, (ast.Subscript, ast.Attribute)) or (isinstance(side, ast.Name) and side.id in TYPES)
                      or (isinstance(side, ast.Constant) and side.value is None) for side in (node.value.left, node.value.right))]
    return [f"{path}:{line}" for line in sorted(set(found))]


def test_no_builtin_generic_is_evaluated_on_the_deployment_side():
    found = sum((runtime_builtin_generics(REPO / f) for f in deployment_files()), [])
    assert not found, f"use typing.Tuple/List/Dict outside annotations: {found}"


def test_the_static_check_catches_a_python_3_10_call(tmp_path):
    """The check can fail: a zip(strict=...) call and an evaluated `X | None` annotation are found."""
    (tmp_path / "late.py").write_text("def f(a, b):\n    return list(zip(a, b, strict=True))\n")
    (tmp_path / "typed.py").write_text("def g(x: int | None = None) -> list[int]:\n    return []\n")
    assert vermin(str(tmp_path / "late.py")).returncode != 0
    assert vermin("--eval-annotations", str(tmp_path / "typed.py")).returncode != 0
    (tmp_path / "alias.py").write_text("from __future__ import annotations\nRGB = tuple[int, int, int]\n"
                                       "def h(c: tuple[int, int]) -> list[int]:\n    return []\nSeed = int | None\nMASK = 1 | 2\n")
    assert runtime_builtin_generics(tmp_path / "alias.py") == [f"{tmp_path / 'alias.py'}:{n}" for n in (2, 5)]


_NO_TORCH = """
import importlib.abc, sys
class _NoTraining(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "yaml", "pydantic"):
            raise ModuleNotFoundError("No module named " + repr(name), name=name)
sys.meta_path.insert(0, _NoTraining())
from dgnet_edge.cli.main import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("args", [["train", "--stage", "baseline"], ["export", "missing.pt", "--out", "x"],
                                  ["calib", "check", "x", "--data", "y"]])
def test_a_training_command_without_torch_names_the_extra(args, tmp_path):
    result = subprocess.run([sys.executable, "-c", _NO_TORCH, *args], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'dgnet-edge[train]'" in lines[0], result.stderr


# -- a fresh deployment install ----------------------------------------------------------------------
def oldest_python() -> str:
    """DGNET_EDGE_TEST_PYTHON, else pyenv's Python 3.8 (JetPack 5's), else the Python running the tests."""
    chosen = os.environ.get("DGNET_EDGE_TEST_PYTHON")
    if chosen:
        return chosen
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for exe in sorted(pyenv.glob("3.8.*/bin/python3.8")):
        return str(exe)
    return sys.executable


def run(cmd: list[str], timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` outside the repository (by default in the user's home), so that `python -c` cannot import
    the package from the working tree instead of the installed one."""
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                            cwd=cwd or Path.home())
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def deployment_venv(tmp_path_factory) -> Path:
    """A virtual environment with `pip install dgnet-edge` (no extras) from a copy of this tree."""
    root = tmp_path_factory.mktemp("deploy")
    source = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("dgnet_edge", "export", "calib", "apps", "configs"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    venv = root / "venv"
    run([oldest_python(), "-m", "venv", venv])
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([python, "-m", "pip", "install", "-q", source], timeout=1200)
    return venv


def test_the_deployment_install_has_no_torch(deployment_venv):
    python = deployment_venv / "bin" / "python"
    found = run([python, "-c", "import importlib.util as u; print([m for m in ('torch', 'yaml', 'pydantic') "
                 "if u.find_spec(m) is not None])"]).stdout.strip()
    assert found == "['yaml']", f"the deployment install should pull PyYAML (the camera config) and no training package: {found}"
    report = json.loads(run([deployment_venv / "bin" / "dgnet-edge", "doctor", "--json"]).stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["torch"]["found"] == "not installed"
    assert report["app_can_run"] and report["demo_backend"] == "onnxruntime"


def test_every_deployment_module_imports_and_every_command_has_help(deployment_venv):
    """Like a bare-venv import check: every module outside the training side imports, every --help works."""
    code = f"""
import importlib, pkgutil, sys
import dgnet_edge
training = {TRAINING_MODULES!r}
failed = []
for info in pkgutil.walk_packages(dgnet_edge.__path__, "dgnet_edge."):
    if info.name.startswith(training) or info.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(info.name)
    except Exception as e:
        failed.append(f"{{info.name}}: {{type(e).__name__}}: {{e}}")
assert not failed, chr(10).join(failed)
assert "torch" not in sys.modules
print("ok")
"""
    assert run([deployment_venv / "bin" / "python", "-c", code]).stdout.strip().endswith("ok")
    exe = deployment_venv / "bin" / "dgnet-edge"
    commands = [["demo"], ["doctor"], ["report"], ["eval-tracks"], ["gallery"], ["gallery", "list"], ["train"],
                ["export"], ["calib"], ["bench"], ["data"], ["build"]]
    for command in commands:
        run([exe, *command, "--help"])


def test_demo_gallery_and_report_run_without_torch(deployment_venv, tiny_dgnet_int8_export, tiny_bench, tiny_world,
                                                   tmp_path):
    """The export is made by the training side (this environment); the deployment install runs it."""
    exe = deployment_venv / "bin" / "dgnet-edge"
    gallery = tmp_path / "gallery.db"
    sources = sum((["--source", str(p)] for p in sorted(tiny_bench.glob("cam*"))), [])
    demo = run([exe, "demo", *sources, "--export", tiny_dgnet_int8_export,
                "--threshold", "0.9", "--gallery", gallery, "--save-txt", tmp_path / "tracks",
                "--no-progress", "--no-show", "--json"])
    summary = json.loads(demo.stdout)
    assert summary["identities"] >= 1
    assert sorted(p.name for p in (tmp_path / "tracks").iterdir()) == ["cam1.txt", "cam2.txt", "camera.yaml"]  # the tracks and the run's resolved config

    listed = json.loads(run([exe, "gallery", "list", "--gallery", gallery, "--json"]).stdout)
    assert len(listed) == summary["identities"]
    first = listed[0]["id"]
    run([exe, "gallery", "rename", str(first), "Ada", "--gallery", gallery])
    shown = json.loads(run([exe, "gallery", "show", str(first), "--gallery", gallery, "--json"]).stdout)
    assert shown["name"] == "Ada"
    run([exe, "gallery", "export", tmp_path / "gallery_export", "--gallery", gallery])
    assert any((tmp_path / "gallery_export").iterdir())

    out = tmp_path / "report"
    run([exe, "report", tiny_dgnet_int8_export, "--data", tiny_world, "--backends", "onnxruntime", "--batch", "1,2",
         "--runs", "2", "--out", out, "--no-progress"], timeout=900)
    rows = json.loads((out / "report.json").read_text())["rows"]
    measured = {r["key"] for r in rows if r["available"] and r["features_finite"] and r["latency"]["1"]["call"]["p50_ms"] > 0}
    assert {"onnxruntime:fp32", "onnxruntime:int8-cpu"} <= measured, [(r["key"], r["reason"]) for r in rows]
    assert all(r["accuracy"]["num_queries"] > 0 and not r["torch_imported"] for r in rows if r["key"] in measured)


# -- aarch64 wheels for each JetPack's Python ----------------------------------------------------------
def deployment_requirements(platform_release: str) -> list[str]:
    """pyproject's runtime dependencies whose markers hold on a machine with ``platform_release``."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    environment = {**default_environment(), "platform_release": platform_release, "platform_machine": "aarch64"}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    kept = []
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            requirement.marker = None
            kept.append(str(requirement))
    return kept


def python_of(version: str) -> str:
    """pyenv's interpreter of ``version`` where there is one, else the one running the tests.

    pip evaluates the environment markers of dependencies (TrackEval's ``python_version`` ones) with
    the interpreter it runs in, whatever ``--python-version`` says: only the right interpreter
    resolves as that Python would.
    """
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(pyenv.glob(f"{version}.*/bin/python{version}"))
    return str(found[-1]) if found else sys.executable


def resolve(requirements: list[str], python_version: str, target: Path) -> dict[str, str]:
    """The packages (name: version) pip picks for ``requirements`` as binary wheels for aarch64 Linux and
    ``python_version``."""
    target.mkdir(parents=True)
    report = target / "report.json"
    platforms = sum((["--platform", p] for p in AARCH64), [])
    run([python_of(python_version), "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--only-binary=:all:", *platforms, "--python-version", python_version, "--target", target / "site",
         "--report", report, *requirements], timeout=900)
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in json.loads(report.read_text())["install"]}


@pytest.mark.slow
@pytest.mark.parametrize("python_version", JETPACK_PYTHONS)
def test_the_deployment_dependencies_have_aarch64_wheels(python_version, tmp_path):
    generic = resolve(deployment_requirements("5.15.0-generic"), python_version, tmp_path / "generic")
    assert {"numpy", "onnxruntime", "opencv-contrib-python-headless", "trackeval", "typer"} <= set(generic)
    assert "torch" not in generic
    jetson = resolve(deployment_requirements("5.15.148-tegra"), python_version, tmp_path / "jetson")
    assert {"numpy", "onnxruntime", "typer"} <= set(jetson)
    assert not [name for name in jetson if name.startswith("opencv")], f"a pip OpenCV would shadow JetPack's: {jetson}"
    assert jetson["numpy"].startswith("1."), f"JetPack's OpenCV needs NumPy 1.x, got {jetson['numpy']}"
