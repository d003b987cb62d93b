"""The layers of issue 14, checked from the source: the import graph is read with ``ast`` (imports at
module level and inside functions alike), and the test fails on any import cycle and on any import
of a higher layer. A module may import its own layer and the ones below it.

To place a new module, add it to ``LAYERS`` (a module that matches no entry fails the test, so the
map cannot silently fall behind the code). Imports of third-party packages are not edges: heavy
optional dependencies are imported inside the functions that need them, on purpose.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Repository folder -> the package it installs as (pyproject's package-dir).
PACKAGE_DIRS = {"rtstyle": "rtstyle", "trainers": "rtstyle.trainers", "export": "rtstyle.export",
                "benchmarks": "rtstyle.benchmarks"}

# Lowest first; each layer is {group: module patterns}. "name" is that module alone, "name.*" a package
# and everything in it. Groups that share a layer (train, eval, export) are siblings: neither imports
# the other; what both need belongs in a lower layer.
LAYERS: list[dict[str, list[str]]] = [
    {"errors": ["rtstyle.errors"]},
    {"core": ["rtstyle.frames", "rtstyle.fsutil", "rtstyle.outputs", "rtstyle.dtypes", "rtstyle.sysinfo",
              "rtstyle.textutil", "rtstyle.argparsing", "rtstyle.choices", "rtstyle.graph_format", "rtstyle.cpu_memory", "rtstyle.degrade",
              "rtstyle.progress", "rtstyle.presets", "rtstyle.timecode", "rtstyle.netconfig", "rtstyle.trainconfig",
              "rtstyle.threads", "rtstyle.signals", "rtstyle.limits", "rtstyle.trust", "rtstyle.pt2_archive"]},
    {"nets/losses": ["rtstyle.nets.*", "rtstyle.losses", "rtstyle.vgg"]},
    {"models": ["rtstyle.checkpoint", "rtstyle.models.*", "rtstyle.conditioning"]},
    # The package itself is the Python API's front door (``rtstyle.Stylizer``, loaded on first use).
    {"runtime": ["rtstyle", "rtstyle.api", "rtstyle.engine", "rtstyle.counting", "rtstyle.backend_choice", "rtstyle.backends.*", "rtstyle.video.*",
                 "rtstyle.sources.*", "rtstyle.sinks", "rtstyle.pipeline", "rtstyle.live.*", "rtstyle.temporal.*",
                 "rtstyle.stylize", "rtstyle.batch", "rtstyle.photos", "rtstyle.synth",
                 "rtstyle.strength", "rtstyle.tiles", "rtstyle.cluster.*", "rtstyle.serve.*", "rtstyle.gpu.*"]},
    {"train": ["rtstyle.trainers.*"],
     "eval": ["rtstyle.eval.*", "rtstyle.eval_temporal", "rtstyle.metrics", "rtstyle.quality", "rtstyle.gallery",
              "rtstyle.optimize", "rtstyle.style_lookup", "rtstyle.sr_eval"],
     "export": ["rtstyle.export.*"]},
    {"bench": ["rtstyle.benchmarks.*", "rtstyle.doctor"]},
    {"cli": ["rtstyle.cli", "rtstyle.__main__", "rtstyle.commands.*"]},
]

# Temporary exceptions while the modules that hold them are being moved (issue 14). Each entry is
# (importer, imported). An entry that no longer occurs fails the test, so this list only shrinks.
KNOWN_UPWARD: set[tuple[str, str]] = set()
KNOWN_CYCLES: set[frozenset[str]] = set()


def source_modules() -> dict[str, Path]:
    modules = {}
    for folder, package in PACKAGE_DIRS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    """The project modules one import statement loads (the most specific known module per name)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        # `from package import submodule` loads the submodule; `from module import name` the module.
        names = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
    found = []
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.append(name)
    return found


def import_graph() -> dict[str, dict[str, int]]:
    """importer -> {imported: first line number}, over every import statement in the file."""
    modules = source_modules()
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, {})
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, path, node, modules):
                    edges.setdefault(target, node.lineno)
    return graph


def _matches(module: str, pattern: str) -> bool:
    return module == pattern.removesuffix(".*") or (pattern.endswith(".*") and module.startswith(pattern[:-1]))


def layer_of(module: str) -> tuple[int, str] | None:
    """(rank, group) of a module, or None when it matches no entry or more than one."""
    found = {(rank, group) for rank, groups in enumerate(LAYERS) for group, patterns in groups.items()
             for pattern in patterns if _matches(module, pattern)}
    return found.pop() if len(found) == 1 else None


def wrong_way(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported`` (a higher layer, or a sibling group), else None."""
    low, high = layer_of(importer), layer_of(imported)
    if low is None or high is None or high[0] < low[0] or high == low:
        return None
    return f"{low[1]} -> {high[1]}" + (" (siblings)" if high[0] == low[0] else "")


def cycles(graph: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, {}))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_every_module_has_exactly_one_layer():
    unplaced = sorted(m for m in source_modules() if layer_of(m) is None)
    assert not unplaced, f"add these modules to exactly one entry of LAYERS in {__file__}: {unplaced}"


def test_no_import_reaches_a_higher_layer():
    graph, paths = import_graph(), source_modules()
    upward = {}
    for importer, edges in graph.items():
        for imported, line in edges.items():
            why = wrong_way(importer, imported)
            if why:
                upward[(importer, imported)] = f"{paths[importer].relative_to(REPO)}:{line} ({why})"
    new = {edge: where for edge, where in upward.items() if edge not in KNOWN_UPWARD}
    assert not new, "upward imports:\n" + "\n".join(f"{a} -> {b} at {w}" for (a, b), w in sorted(new.items()))
    gone = KNOWN_UPWARD - set(upward)
    assert not gone, f"fixed, so remove from KNOWN_UPWARD: {sorted(gone)}"


def test_no_import_cycles():
    found = set(cycles(import_graph()))
    new = found - KNOWN_CYCLES
    assert not new, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in new)
    gone = KNOWN_CYCLES - found
    assert not gone, f"fixed, so remove from KNOWN_CYCLES: {[sorted(c) for c in gone]}"


def test_the_readme_layout_names_every_entry_of_the_map():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Layout"):]
    section = section[:section.index("\n## ", 1)]
    missing = [p for groups in LAYERS for patterns in groups.values() for p in patterns
               if p != "rtstyle" and not p.split(".")[-1].startswith("_")
               and p.removesuffix(".*").split(".")[-1] not in section]
    assert not missing, f"README.md's Layout section does not name: {missing}"


def test_the_checker_sees_function_level_imports_and_cycles(tmp_path):
    # The checker itself: an import inside a function is an edge, and a two-module loop is a cycle.
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 3}, "d": {"a": 1}}
    assert cycles(graph) == [frozenset("abc")]
    tree = ast.parse("def f():\n    from .nets import adain\n")
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    modules = {"rtstyle.gallery": Path("gallery.py"), "rtstyle.nets": Path("nets/__init__.py"),
               "rtstyle.nets.adain": Path("nets/adain.py")}
    assert _targets("rtstyle.gallery", Path("gallery.py"), node, modules) == ["rtstyle.nets.adain"]
    assert layer_of("rtstyle.nets.adain") == (2, "nets/losses")
    assert layer_of("rtstyle.not_in_the_map") is None
    assert wrong_way("rtstyle.commands.stylize", "rtstyle.stylize") is None
    assert wrong_way("rtstyle.engine", "rtstyle.export.onnx_export") == "runtime -> export"
    assert wrong_way("rtstyle.gallery", "rtstyle.trainers.data") == "eval -> train (siblings)"
    assert wrong_way("rtstyle.quality", "rtstyle.optimize") is None


@pytest.mark.slow
def test_stylizing_a_file_imports_no_trainer_exporter_or_benchmark(tmp_path, tiny_style_ckpt):
    from tests.helpers_video import make_clip

    src = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 32), audio=False)
    code = (
        "import json, sys\n"
        "from rtstyle.cli import main\n"
        f"code = main(['stylize', {str(src)!r}, '-o', {str(tmp_path / 'out.mp4')!r}, '--model', "
        f"{str(tiny_style_ckpt)!r}, '--no-progress', '--preset', 'ultrafast'])\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    code, loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert code == 0 and (tmp_path / "out.mp4").is_file(), run.stderr
    assert "rtstyle.stylize" in loaded  # it did take the stylize path
    above_runtime = [m for m in loaded if m.startswith(("rtstyle.trainers", "rtstyle.export", "rtstyle.benchmarks"))]
    assert above_runtime == []
