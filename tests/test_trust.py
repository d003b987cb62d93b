"""Issue 15: ``.pt2`` packages and TensorRT engines are code. rtstyle loads only those it produced
(trust list) or those the user trusts explicitly; zip entry names are checked before anything is
extracted, and the loader's unpack folder never outlives the load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

from rtstyle.engine import EngineOptions, open_engine
from rtstyle.errors import CheckpointError
from rtstyle.pt2_archive import check_pt2_entries, load_pt2
from rtstyle.trust import UntrustedModelError, check_trusted, is_trusted, record_trusted, trust_file

EVIL_C = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void evil(void) {
  const char *p = getenv("RTSTYLE_TEST_MARKER");
  FILE *f = p ? fopen(p, "w") : NULL;
  if (f) { fputs("code ran", f); fclose(f); }
}
"""


@pytest.fixture(scope="module")
def evil_so(tmp_path_factory) -> Path:
    """A shared library whose constructor writes the file named by $RTSTYLE_TEST_MARKER."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("needs a C compiler to build the crafted package")
    root = tmp_path_factory.mktemp("evil")
    (root / "evil.c").write_text(EVIL_C)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(root / "evil.so"), str(root / "evil.c")], check=True)
    return root / "evil.so"


def evil_package(path: Path, so: Path, extra: dict[str, str] | None = None) -> Path:
    """A .pt2 laid out like an AOTInductor package whose wrapper library is ``so``."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/.data/version", "0")
        archive.writestr("evil/data/aotinductor/model/cabc.wrapper.so", so.read_bytes())
        meta = json.dumps({"AOTI_DEVICE_KEY": "cpu"})
        archive.writestr("evil/data/aotinductor/model/cabc.wrapper_metadata.json", meta)
        for name, text in (extra or {}).items():
            archive.writestr(name, text)
    return path


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """Point the temp folder at an empty one, to see what a load leaves behind."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("RTSTYLE_TEST_MARKER", str(tmp_path / "MARKER"))
    return tmp


def unpacked(folder: Path) -> list[str]:
    """What a load left in the temp folder (torch's own compile cache, torchinductor_*, aside)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("torchinductor_"))


def test_untrusted_package_is_never_loaded(tmp_path, evil_so, private_tmp):
    package = evil_package(tmp_path / "shared.pt2", evil_so)
    with pytest.raises(UntrustedModelError, match=r"refusing to load shared\.pt2.*--trust-model.*safetensors.*ONNX"):
        open_engine(package)
    assert not (tmp_path / "MARKER").exists()  # the library's constructor never ran
    assert unpacked(private_tmp) == []  # nothing was extracted


def test_trusted_load_failure_leaves_no_unpack_folder(tmp_path, evil_so, private_tmp):
    package = evil_package(tmp_path / "mine.pt2", evil_so)
    # With --trust-model the library does load (that is what trusting means): the failed load
    # must still clean its unpack folder up.
    with pytest.raises(CheckpointError, match="cannot load AOTInductor package"):
        open_engine(package, "aoti", EngineOptions(device="cpu", trust_model=True))
    assert (tmp_path / "MARKER").exists()
    assert unpacked(private_tmp) == []


@pytest.mark.parametrize("name", ["evil/data/aotinductor/model/../../../../../escaped.txt", "/tmp/abs.txt",
                                  "evil\\..\\win.txt"])
def test_unsafe_entry_names_refused_before_extraction(tmp_path, evil_so, private_tmp, name):
    package = evil_package(tmp_path / "traversal.pt2", evil_so, {name: "x"})
    with pytest.raises(CheckpointError, match="unsafe entry"):
        open_engine(package, "aoti", EngineOptions(device="cpu", trust_model=True))
    assert not (tmp_path / "MARKER").exists()
    assert unpacked(private_tmp) == [] and not list(tmp_path.rglob("escaped.txt"))


def test_symlink_entry_refused(tmp_path):
    package = tmp_path / "link.pt2"
    with zipfile.ZipFile(package, "w") as archive:
        info = zipfile.ZipInfo("p/data/aotinductor/model/x.wrapper.so")
        info.external_attr = (0o120777 << 16)  # S_IFLNK
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(CheckpointError, match="symlink"):
        check_pt2_entries(package)


def test_trust_list_records_and_checks(tmp_path):
    model = tmp_path / "built.engine"
    model.write_bytes(b"engine bytes")
    with pytest.raises(UntrustedModelError, match="a compiled model"):
        check_trusted(model)
    record_trusted(model)
    assert is_trusted(model) and oct(trust_file().stat().st_mode & 0o777) == "0o600"
    check_trusted(model)
    model.write_bytes(b"engine bytes, swapped")  # same name, other content: not trusted
    assert not is_trusted(model)
    record_trusted(model)
    os.chmod(trust_file(), 0o666)  # a list others could write vouches for nothing
    assert not is_trusted(model)


def test_untrusted_engine_refused_before_tensorrt_is_needed(tmp_path):
    from rtstyle.backends import trt_backend

    engine = tmp_path / "download.engine"
    engine.write_bytes(b"\x00" * 64)
    with pytest.raises(UntrustedModelError, match=r"download.engine \(a TensorRT engine\)"):
        trt_backend.open(engine, EngineOptions(device="cpu"), "test")


def test_private_unpack_folder_restores_the_environment(tmp_path, evil_so, private_tmp, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    package = evil_package(tmp_path / "mine.pt2", evil_so)
    with pytest.raises(RuntimeError):
        load_pt2(package)
    assert os.environ["TMPDIR"] == str(private_tmp) and tempfile.gettempdir() == str(private_tmp)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor") and unpacked(private_tmp) == []
