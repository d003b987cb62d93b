"""Packaging (issue 14): the wheel holds the one top-level package ``rtstyle``; the repository's
trainers/, export/ and benchmarks/ folders install inside it, so a user's own ``export.py`` (or
another distribution's top-level ``benchmarks``) cannot shadow them; committed results and study
scripts stay out of the wheel; and no module imports the bare names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.test_layers import PACKAGE_DIRS, REPO, source_modules

BARE = ("trainers", "export", "benchmarks")
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "rtstyle", "trainers", "export", "benchmarks")


def _setup_literal(name: str) -> dict[str, set[str]]:
    # setup.py calls setup() when imported; read its literal instead of running it.
    tree = ast.parse((REPO / "setup.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == name)
    return ast.literal_eval(node.value)


def _study_scripts() -> dict[str, set[str]]:
    return _setup_literal("STUDY_SCRIPTS")


def _bare_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        found += [f"{path}:{node.lineno} {n}" for n in names if n.split(".")[0] in BARE]
    return found


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> tuple[list[str], str]:
    """(the names in the wheel, everything the build printed)."""
    pytest.importorskip("setuptools", minversion="77")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            (src / name).write_bytes(path.read_bytes())
    # No build isolation: the installed setuptools (dev extra) builds it, offline and in seconds.
    # -v: the build backend's own output, where setuptools prints its warnings.
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                          "--no-cache-dir", "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    (wheel,) = (tmp / "dist").glob("rtstyle-*.whl")
    with zipfile.ZipFile(wheel) as z:
        return z.namelist(), run.stdout + run.stderr


@pytest.fixture(scope="module")
def wheel_names(built_wheel) -> list[str]:
    return built_wheel[0]


@pytest.mark.slow
def test_build_prints_no_setuptools_warnings(built_wheel):
    # Data folders (serve/static, assets/samples/*) looked like undeclared packages to setuptools: ~170
    # lines of "Package 'rtstyle.serve.static' is absent from the `packages` configuration" on every
    # install (issue 29). Package data is declared in pyproject.toml, and nothing else is picked up.
    names, log = built_wheel
    warnings = [line.strip() for line in log.splitlines() if "Warning:" in line or "is absent from" in line]
    assert not warnings, "\n".join(warnings[:5])
    assert any(n.startswith("rtstyle/serve/static/") for n in names)
    assert any(n.startswith("rtstyle/assets/samples/photos/") for n in names)
    assert any(n.startswith("rtstyle/assets/samples/styles/") for n in names)


@pytest.mark.slow
def test_wheel_top_level_is_rtstyle_only(wheel_names):
    top = {name.split("/")[0] for name in wheel_names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"rtstyle"}
    for package in ("rtstyle/trainers/loop.py", "rtstyle/export/onnx_export.py", "rtstyle/benchmarks/bench.py",
                    "rtstyle/models/starry_night.safetensors"):
        assert package in wheel_names


@pytest.mark.slow
def test_wheel_holds_every_module_but_the_study_scripts(wheel_names):
    # pyproject lists packages by name: a new package folder missing from that list would vanish from the wheel.
    studies = {f"{package}.{name}" for package, names in _study_scripts().items() for name in names}
    missing = []
    for module, path in source_modules().items():
        folder = next(f for f in ("rtstyle", "trainers", "export", "benchmarks") if path.is_relative_to(REPO / f))
        inside = PACKAGE_DIRS[folder].replace(".", "/") + "/" + path.relative_to(REPO / folder).as_posix()
        if module not in studies and inside not in wheel_names:
            missing.append(inside)
    assert not missing, f"add their packages to [tool.setuptools] packages in pyproject.toml: {missing}"


@pytest.mark.slow
def test_wheel_leaves_out_results_and_study_scripts(wheel_names):
    results = {p.name for p in (REPO / "benchmarks" / "results").iterdir()}
    assert results and not [n for n in wheel_names if "/results/" in n or Path(n).name in results]
    assert not [n for n in wheel_names if n.startswith("rtstyle/benchmarks/") and not n.endswith(".py")]
    studies = _study_scripts()
    assert studies["rtstyle.benchmarks"]  # the list is not empty by accident
    for package, names in studies.items():
        folder = package.replace(".", "/")
        for name in names:
            assert f"{folder}/{name}.py" not in wheel_names
    # A study script is a program (it ends in a __main__ guard); every benchmark module that ships is library
    # code with none, so a new study script cannot slip into the wheel unnoticed.
    shipped = [n for n in wheel_names if n.startswith("rtstyle/benchmarks/") and n.endswith(".py")]
    assert shipped
    commands = {f"rtstyle/benchmarks/{n}.py" for n in _setup_literal("SHIPPED_COMMANDS")["rtstyle.benchmarks"]}
    assert commands <= set(shipped)  # shipped commands really ship
    for name in set(shipped) - commands:
        text = (REPO / "benchmarks" / Path(name).name).read_text()
        assert '__name__ == "__main__"' not in text, f"{name} is a script: add it to setup.py's STUDY_SCRIPTS"


@pytest.mark.slow
def test_study_scripts_stay_runnable_from_the_checkout():
    run = subprocess.run([sys.executable, "-m", "rtstyle.benchmarks.cpu_memory", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and "--out" in run.stdout, run.stderr


def test_no_module_imports_the_bare_folder_names(tmp_path):
    paths = [*source_modules().values(), *sorted((REPO / "tests").glob("*.py"))]
    offenders = [hit for path in paths for hit in _bare_imports(path)]
    assert not offenders, offenders
    # The scan finds each form, at module level and inside functions.
    bad = tmp_path / "bad.py"
    bad.write_text("import export.deploy\ndef f():\n    from trainers import common\n    from .export import x\n")
    assert [hit.split(":")[-1] for hit in _bare_imports(bad)] == ["1 export.deploy", "3 trainers"]


def test_readme_and_docs_run_the_installed_names():
    # `python -m benchmarks.temporal` only ever worked from the repository root; the installed name always works.
    docs = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *sorted((REPO / "benchmarks").glob("*.py"))]
    stale = [f"{p.relative_to(REPO)}: {line.strip()}" for p in docs for line in p.read_text().splitlines()
             if any(f"python -m {b}." in line for b in BARE)]
    assert not stale, stale


@pytest.mark.slow
def test_user_files_named_like_the_folders_change_nothing(tmp_path):
    # A user's own export.py, trainers.py and benchmarks.py in the working folder: python puts that folder
    # first on sys.path, so they would be imported if rtstyle used the bare names.
    for name in BARE:
        (tmp_path / f"{name}.py").write_text("raise SystemExit('the user file was imported')\n")
    commands = [
        ["-m", "rtstyle", "export", "onnx", "--help"],
        ["-m", "rtstyle", "train", "style", "--help"],
        ["-m", "rtstyle", "bench", "--help"],
        ["-c", "import rtstyle.export.onnx_export, rtstyle.trainers, rtstyle.benchmarks.bench; print('ok')"],
    ]
    for args in commands:
        run = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert run.returncode == 0, (args, run.stderr[-2000:])
        assert "user file" not in run.stdout + run.stderr
