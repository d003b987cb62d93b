"""The small helpers written once: CPU facts from /proc/cpuinfo (rtstyle.sysinfo) and the first
line of an exception (rtstyle.textutil)."""

from __future__ import annotations

import re

import pytest

from rtstyle import sysinfo
from rtstyle.textutil import first_line
from tests.test_layers import REPO, source_modules

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16

processor\t: 1
model name\t: a different name that must not win
flags\t\t: fpu
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd bf16 sve

"""


@pytest.fixture
def fake_cpuinfo(tmp_path, monkeypatch):
    def use(text: str | None):
        path = tmp_path / "cpuinfo"
        if text is not None:
            path.write_text(text)
        monkeypatch.setattr(sysinfo, "CPUINFO", path)
        sysinfo.cpuinfo.cache_clear()

    yield use
    sysinfo.cpuinfo.cache_clear()  # the next caller reads the real file again


def test_x86_model_and_flags_from_the_first_processor(fake_cpuinfo):
    fake_cpuinfo(X86)
    assert sysinfo.cpu_model() == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx2", "avx512_bf16"} <= sysinfo.cpu_flags() and "fpu" in sysinfo.cpu_flags()
    assert sysinfo.cpu_has_native_bf16()


def test_arm_features_and_no_model_name(fake_cpuinfo, monkeypatch):
    fake_cpuinfo(ARM)
    monkeypatch.setattr(sysinfo.platform, "processor", lambda: "")
    monkeypatch.setattr(sysinfo.platform, "machine", lambda: "aarch64")
    assert sysinfo.cpu_flags() == frozenset({"fp", "asimd", "bf16", "sve"})
    assert sysinfo.cpu_model() == "aarch64"
    assert not sysinfo.cpu_has_native_bf16()  # no x86 bf16 instructions


def test_missing_file_means_unknown_not_an_error(fake_cpuinfo, monkeypatch):
    fake_cpuinfo(None)
    monkeypatch.setattr(sysinfo.platform, "processor", lambda: "arm")
    assert sysinfo.cpu_flags() == frozenset()
    assert sysinfo.cpu_model() == "arm"
    assert not sysinfo.cpu_has_native_bf16()


def test_this_machine_answers():
    assert isinstance(sysinfo.cpu_model(), str) and sysinfo.cpu_model()
    assert isinstance(sysinfo.cpu_flags(), frozenset)


@pytest.mark.parametrize("exc, expected", [
    (RuntimeError("  parser failed: bad node\n  at line 3\n  ...\n"), "parser failed: bad node"),
    (ValueError(""), "ValueError"),
    (OSError("\n\n"), "OSError"),
    (KeyError("x"), "'x'"),
    # OpenVINO's form: source locations first, its own message after them
    (RuntimeError("Exception from src/inference/src/cpp/core.cpp:84:\nException from src/inference/src/model_reader.cpp:148:\n"
                  "Unable to read the model: \"bad.onnx\" Please check that model format: \".onnx\" is supported\n\n"),
     "Unable to read the model: \"bad.onnx\" Please check that model format: \".onnx\" is supported"),
    (RuntimeError("Exception from src/core.cpp:9:"), "Exception from src/core.cpp:9:"),  # nothing else: kept
])
def test_first_line(exc, expected):
    assert first_line(exc) == expected


# Each helper is written once; these find a copy creeping back in (the message says where the one lives).
ONCE = [  # (what a copy looks like, where the one lives, what to do, a copy the pattern must catch)
    (re.compile(r"/proc/cpuinfo"), "rtstyle/sysinfo.py", "read CPU facts with rtstyle.sysinfo",
     'with open("/proc/cpuinfo") as f:'),
    (re.compile(r"str\(\w+\)(\.strip\(\))?\.splitlines\(\)\[0\]"), "rtstyle/textutil.py",
     "shorten an exception with rtstyle.textutil.first_line", "reason = str(exc).strip().splitlines()[0]"),
    (re.compile(r"[\"']bf16[\"']\s*:\s*torch\.bfloat16"), "rtstyle/dtypes.py", "map precision names with rtstyle.dtypes",
     '_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}'),
]


@pytest.mark.parametrize("pattern, home, advice, example", ONCE, ids=["cpuinfo", "first_line", "dtypes"])
def test_each_helper_is_written_once(pattern, home, advice, example):
    assert pattern.search(example) and (REPO / home).is_file()
    paths = list(source_modules().values())
    copies = [f"{path.relative_to(REPO)}:{n}" for path in paths if path.relative_to(REPO).as_posix() != home
              for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not copies, f"{advice} instead of a copy: {copies}"
