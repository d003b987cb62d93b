"""Every TensorRT name and signature rtstyle uses, checked against NVIDIA's real Python bindings on a
machine without a GPU or TensorRT's libraries.

``tensorrt-cu13-bindings`` (on the package index, in the ``dev`` extra) holds the compiled bindings
alone; the libraries they link (libnvinfer, libnvinfer_plugin, libnvonnxparser) come from NVIDIA's
own index. Three stub libraries with those sonames and the nine C entry points the bindings import
(compiled here with the system C compiler; never called) let ``import tensorrt`` succeed, so the
bindings' classes, enums and pybind11 signatures can be read. The names used are found in the
source (``trt.X.Y`` chains, and methods called on TensorRT objects), not listed by hand, so new code
is checked too. Names TensorRT 11 dropped (``BuilderFlag.FP16``, ``ILayer.precision`` and
``set_output_type``: no weak typing) must stay behind the project's version gate.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = [REPO / "rtstyle" / "backends" / "trt_build.py", REPO / "rtstyle" / "backends" / "trt_backend.py"]

# The bindings' undefined symbols that are not libc/libstdc++/Python (`nm -D --undefined-only tensorrt.so`).
STUBS = {
    "libnvinfer.so": ["createInferBuilder_INTERNAL", "createInferRefitter_INTERNAL", "createInferRuntime_INTERNAL",
                      "getBuilderPluginRegistry", "getPluginRegistry"],
    "libnvinfer_plugin.so": ["initLibNvInferPlugins"],
    "libnvonnxparser.so": ["createNvOnnxParser_INTERNAL", "createNvOnnxParserRefitter_INTERNAL",
                           "getNvOnnxParserVersion"],
}

# Variables (and self.<attr>) that hold TensorRT objects in SOURCES, by class.
OBJECTS = {
    "runtime": "Runtime", "engine": "ICudaEngine", "context": "IExecutionContext", "builder": "Builder",
    "network": "INetworkDefinition", "parser": "OnnxParser", "profile": "IOptimizationProfile", "layer": "ILayer",
    "cache": "ITimingCache", "fresh": "ITimingCache",
}
# ... in these functions only (elsewhere the same names hold rtstyle's own objects).
TRT_FUNCTIONS = {"__init__", "_measure_scale", "_infer", "_set_shape", "_bind", "_build", "_fp16_with_fp32_norms",
                 "_load_timing_cache", "_save_timing_cache"}
BUILDER_CONFIG_FUNCTIONS = {"_build", "_fp16_with_fp32_norms", "_load_timing_cache"}  # there `config` is IBuilderConfig

# Gone in TensorRT 11 (strongly typed networks only): used only where the version gate allows.
TRT10_ONLY = {("BuilderFlag", "FP16"), ("BuilderFlag", "OBEY_PRECISION_CONSTRAINTS"), ("ILayer", "precision"),
              ("ILayer", "set_output_type"), ("IBuilderConfig", "set_flag")}

# Results the project checks and keyword arguments it passes: the signatures must say so.
SIGNATURES = {
    ("IExecutionContext", "set_input_shape"): ("-> bool", ()),
    ("IExecutionContext", "set_tensor_address"): ("-> bool", ()),
    ("IExecutionContext", "execute_async_v3"): ("-> bool", ("stream_handle",)),
    ("IBuilderConfig", "set_timing_cache"): ("-> bool", ("cache", "ignore_mismatch")),
    ("OnnxParser", "parse_from_file"): ("-> bool", ()),
    ("IOptimizationProfile", "set_shape"): ("", ("input", "min", "opt", "max")),
}


def used_names() -> tuple[set[tuple[str, ...]], set[tuple[str, str]]]:
    """(``trt.X[.Y]`` chains, (class, member) pairs called on TensorRT objects) in SOURCES."""
    chains: set[tuple[str, ...]] = set()
    members: set[tuple[str, str]] = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                chain = _chain(node)
                if chain and chain[0] == "trt" and len(chain) > 1:
                    chains.add(tuple(chain[1:3]))
        for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in TRT_FUNCTIONS):
            objects = dict(OBJECTS, **({"config": "IBuilderConfig"} if func.name in BUILDER_CONFIG_FUNCTIONS else {}))
            for node in ast.walk(func):
                if isinstance(node, ast.Attribute):
                    owner = node.value
                    on_self = isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name)
                    if on_self and owner.value.id == "self":
                        owner_name = owner.attr
                    elif isinstance(owner, ast.Name):
                        owner_name = owner.id
                    else:
                        continue
                    if owner_name in objects:
                        members.add((objects[owner_name], node.attr))
    # Only the longest chains: trt.Logger.WARNING covers trt.Logger.
    return {c for c in chains if not any(len(o) > len(c) and o[:len(c)] == c for o in chains)}, members


def _chain(node: ast.AST) -> list[str]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else []


PROBE = textwrap.dedent('''
    import json, sys
    import tensorrt_bindings as trt
    sys.modules["tensorrt"] = trt  # what the tensorrt wheel's own package re-exports
    chains, members, signatures = json.loads(sys.argv[1])
    def find(path):
        obj = trt
        for name in path:
            if not hasattr(obj, name):
                return None
            obj = getattr(obj, name)
        return obj
    out = {"version": trt.__version__, "missing": [], "signatures": {}}
    for path in chains + members:
        if find(path) is None:
            out["missing"].append(".".join(path))
    for cls, member in signatures:
        doc = getattr(find([cls, member]), "__doc__", None) or ""
        out["signatures"][cls + "." + member] = doc.split("\\n\\n")[0] if "Overloaded" not in doc else doc
    # rtstyle's own code with the real module: the dtype table and the typing gate.
    from pathlib import Path
    from rtstyle.backends import trt_backend, trt_build
    from rtstyle.errors import InputError
    out["dtypes"] = sorted(str(d) for d in trt_backend._torch_dtypes(trt).values())
    info = trt_build.OnnxInfo("float", "fp32", 1)
    try:
        out["fp32_model_as_fp16"] = trt_build._strongly_typed(trt, info, "fp16", Path("m.onnx"))
    except InputError as exc:
        out["fp32_model_as_fp16"] = "refused: " + str(exc)
    out["fp16_model"] = trt_build._strongly_typed(trt, trt_build.OnnxInfo("float", "fp16", 1), "fp16", Path("m.onnx"))
    print(json.dumps(out))
''')


@pytest.fixture(scope="module")
def stub_libraries(tmp_path_factory) -> Path:
    spec = importlib.util.find_spec("tensorrt_bindings")
    if spec is None:
        pytest.skip("tensorrt-cu13-bindings is not installed (pip install -e '.[dev]')")
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler to build the stub TensorRT libraries")
    major = _bindings_major(Path(spec.origin).parent)
    folder = tmp_path_factory.mktemp("trt-stubs")
    for library, symbols in STUBS.items():
        source = folder / f"{library}.c"
        source.write_text("".join(f"void *{name}(void) {{ return 0; }}\n" for name in symbols))
        soname = f"{library}.{major}"
        subprocess.run([compiler, "-shared", "-fPIC", "-o", str(folder / soname), f"-Wl,-soname,{soname}", str(source)],
                       check=True, capture_output=True)
    return folder


def _bindings_major(package: Path) -> str:
    """The sonames' major version, from the bindings' own version string (no import)."""
    for line in (package / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip("\"'").split(".")[0]
    raise AssertionError("tensorrt_bindings has no __version__")


@pytest.fixture(scope="module")
def probe(stub_libraries) -> dict:
    chains, members = used_names()
    query = json.dumps([sorted(map(list, chains)), sorted(map(list, members)), sorted(map(list, SIGNATURES))])
    env = {**os.environ, "LD_LIBRARY_PATH": str(stub_libraries), "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", PROBE, query], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_source_scan_finds_what_the_project_uses():
    chains, members = used_names()
    assert {("Logger", "WARNING"), ("TensorIOMode", "INPUT"), ("MemoryPoolType", "WORKSPACE")} <= chains
    assert {("IExecutionContext", "set_tensor_address"), ("IExecutionContext", "execute_async_v3"),
            ("IBuilderConfig", "set_timing_cache"), ("Builder", "build_serialized_network")} <= members


def test_every_name_exists_in_the_bindings(probe):
    major = int(probe["version"].split(".")[0])
    missing = {tuple(name.split(".")) for name in probe["missing"]}
    if major >= 11:
        assert missing == TRT10_ONLY & missing and ("BuilderFlag", "FP16") in missing, (
            f"TensorRT {probe['version']} lacks {sorted(missing - TRT10_ONLY)}")
    else:
        assert not missing, f"TensorRT {probe['version']} lacks {sorted(missing)}"


def test_signatures_return_what_the_project_checks(probe):
    for (cls, member), (returns, keywords) in SIGNATURES.items():
        doc = probe["signatures"][f"{cls}.{member}"]
        assert returns in doc, f"{cls}.{member}: {doc[:200]}"
        for keyword in keywords:
            assert f"{keyword}:" in doc, f"{cls}.{member} has no argument {keyword!r}: {doc[:200]}"


def test_the_version_gate_with_the_real_module(probe):
    assert {"torch.float32", "torch.float16", "torch.uint8"} <= set(probe["dtypes"])
    assert probe["fp16_model"] is True  # an fp16 graph builds strongly typed on every version
    if int(probe["version"].split(".")[0]) >= 11:  # no weak typing: an fp32 graph cannot become fp16
        assert str(probe["fp32_model_as_fp16"]).startswith("refused: ") and "--fp16" in probe["fp32_model_as_fp16"]
    else:
        assert probe["fp32_model_as_fp16"] is False
