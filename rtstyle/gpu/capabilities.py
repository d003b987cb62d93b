"""What this machine's video path can use, each answer with its reason: NVENC encoders, CUDA
hardware decoding through PyAV, and the ``--decoder`` / ``--codec`` choices built on them.

An encoder counts as usable only when FFmpeg has it AND it opens here: PyAV wheels ship
``h264_nvenc`` everywhere, but it needs an NVIDIA driver and a GPU with an NVENC unit (A100,
H100 and H200 have none). Probes are cached per process; the library returns reasons and the
CLI prints them (``resolve_codec`` / ``resolve_decoder``: one line per fallback).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from dataclasses import dataclass
from fractions import Fraction

from ..errors import InputError

NVENC_CODECS = ("h264_nvenc", "hevc_nvenc")
CPU_CODEC = "libx264"
DECODERS = ("auto", "pyav", "pyav-cuda", "opencv")
# Data-centre GPUs built without NVENC (they keep NVDEC): named in the reason when NVENC fails there.
NO_NVENC_GPUS = ("A100", "A30", "H100", "H200", "H20", "H800", "A800")


@dataclass(frozen=True)
class Capability:
    name: str
    usable: bool
    reason: str  # what was found, or what is missing

    def line(self) -> str:
        return f"{self.name}: {'yes' if self.usable else 'no'} ({self.reason})"


def _has_av() -> bool:
    return importlib.util.find_spec("av") is not None


@contextlib.contextmanager
def ffmpeg_errors_in_exceptions():
    """FFmpeg says why (``Cannot load libcuda.so.1``, ``No capable devices found``) only in its
    log; with logging on, PyAV appends the last error line to the exception."""
    import av.logging

    before = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture():  # kept out of stderr: the reason is returned instead
            yield
    finally:
        av.logging.set_level(before)


def _first_line(exc: BaseException) -> str:
    """FFmpeg's own words when PyAV appended them, else the exception's first line."""
    text = str(exc).strip()
    if "last error log:" in text:
        text = text.split("last error log:", 1)[1].strip()
    lines = text.splitlines()
    return lines[0] if lines else exc.__class__.__name__


def _gpu_name() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(torch.cuda.current_device())


@functools.cache
def encoder_support(codec: str) -> Capability:
    """Whether ``codec`` is in this FFmpeg and opens a 256x256 encoder here."""
    if not _has_av():
        return Capability(codec, False, "PyAV is not installed")
    import av

    if codec not in av.codecs_available:
        return Capability(codec, False, f"not in this FFmpeg build (libavcodec {av.library_versions['libavcodec']})")
    try:
        with ffmpeg_errors_in_exceptions():
            ctx = av.CodecContext.create(codec, "w")
            ctx.width, ctx.height, ctx.pix_fmt = 256, 256, "yuv420p"
            ctx.time_base = Fraction(1, 25)
            ctx.open()
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here", with its reason
        reason = _first_line(exc)
        if "nvenc" in codec:
            gpu = _gpu_name()
            if gpu is None:
                reason += "; no CUDA GPU visible to torch"
            elif any(name in gpu for name in NO_NVENC_GPUS):
                reason += f"; {gpu} has no NVENC unit (A100, H100 and H200 have none)"
        return Capability(codec, False, f"in FFmpeg but does not open here: {reason}")
    return Capability(codec, True, "opens here")


@functools.cache
def hw_decode_support() -> Capability:
    """PyAV's CUDA hardware decoding, frames handed to torch on the same GPU: usable only when a
    generated H.264 clip decodes into frames that stay in GPU memory (format ``cuda``) and whose
    planes reach torch by DLPack holding the right picture. Opening a CUDA device alone proves
    little: without NVDEC's library (libnvcuvid) the decoder falls back to the CPU at the first
    frame."""
    name = "pyav-cuda"
    if not _has_av():
        return Capability(name, False, "PyAV is not installed")
    import torch

    if not torch.cuda.is_available():
        return Capability(name, False, f"no CUDA GPU visible to torch (CUDA build: {torch.version.cuda or 'no'})")
    from av.codec.hwaccel import hwdevices_available

    if "cuda" not in hwdevices_available():
        return Capability(name, False, f"this FFmpeg has no CUDA hwaccel (has: {', '.join(hwdevices_available()) or 'none'})")
    try:
        with ffmpeg_errors_in_exceptions():
            problem = _nvdec_probe(torch.cuda.current_device())
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here", with its reason
        return Capability(name, False, f"CUDA decoding of a generated H.264 clip failed: {_first_line(exc)}")
    if problem:
        return Capability(name, False, problem)
    return Capability(name, True, f"NVDEC through FFmpeg on {_gpu_name()} (a generated H.264 clip decoded into GPU memory)")


PROBE_SIZE = (256, 144)  # width, height of the probe clip: over NVDEC's minimum, one macroblock row multiple
PROBE_LEVELS = (40, 120, 200)  # the flat grey of each probe frame


def h264_probe_clip() -> bytes:
    """A raw H.264 (Annex B) stream of flat grey frames at ``PROBE_LEVELS``, 4:2:0 8-bit: what
    every NVDEC generation decodes."""
    import io

    import av
    import numpy as np

    w, h = PROBE_SIZE
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "qp": "10"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for level in PROBE_LEVELS:
            frame = av.VideoFrame.from_ndarray(np.full((h, w), level, np.uint8), format="gray")
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode(None))
    return buf.getvalue()


def cuda_hwaccel(device_index: int, allow_software_fallback: bool):
    """PyAV's NVDEC settings, decoding into torch's own CUDA context.

    For frames that stay on the GPU PyAV asks FFmpeg for the device's primary context, which FFmpeg
    wants with its own flags (blocking sync) and refuses once torch has made it with others
    ("Primary context already active with incompatible flags": every decode after the first CUDA op
    of a process). So torch makes its context current on this thread first, and FFmpeg takes it as
    it is (``current_ctx``, FFmpeg 6.1+): the DLPack pointers of decoded frames are then torch's."""
    import torch
    from av.codec.hwaccel import HWAccel

    with torch.cuda.device(device_index):
        torch.cuda.current_stream().synchronize()  # a runtime call: the primary context is current here
        return HWAccel("cuda", device=str(device_index), allow_software_fallback=allow_software_fallback,
                       is_hw_owned=True, options={"primary_ctx": "0", "current_ctx": "1"})


def _nvdec_probe(device_index: int) -> str | None:
    """Decode ``h264_probe_clip`` with CUDA hardware decoding (no software fallback); None when
    every frame stayed on the GPU with its grey level, else what went wrong."""
    import io

    import av
    import torch

    lumas = []
    hw = cuda_hwaccel(device_index, allow_software_fallback=False)
    with av.open(io.BytesIO(h264_probe_clip()), "r", format="h264", hwaccel=hw) as container:
        for frame in container.decode(video=0):
            if frame.format.name != "cuda":
                return f"CUDA decoding falls back to the CPU here (frames in {frame.format.name}, not cuda)"
            y = torch.from_dlpack(frame.planes[0].__dlpack__())
            if not y.is_cuda:
                return f"NVDEC frames reach torch on {y.device}, not the GPU"
            torch.cuda.synchronize(device_index)  # FFmpeg's copy ran on the default stream
            lumas.append(round(y.float().mean().item()))
    # Grey level g is stored as luma 16 + 219 g / 255 (limited range): checks planes and DLPack strides.
    expected = [round(16 + 219 * g / 255) for g in PROBE_LEVELS]
    if len(lumas) != len(expected) or any(abs(a - b) > 2 for a, b in zip(lumas, expected)):
        return f"NVDEC decoded the probe clip wrongly (mean luma {lumas}, expected {expected})"
    return None


def decoder_support() -> dict[str, Capability]:
    pyav = Capability("pyav", _has_av(), "PyAV software decoding" if _has_av() else "PyAV is not installed")
    opencv = importlib.util.find_spec("cv2") is not None
    return {
        "pyav": pyav,
        "pyav-cuda": hw_decode_support(),
        "opencv": Capability("opencv", opencv, "OpenCV decoding" if opencv else "opencv-python is not installed"),
    }


def codec_support() -> dict[str, Capability]:
    return {c: encoder_support(c) for c in (CPU_CODEC, *NVENC_CODECS)}


def resolve_decoder(requested: str, engine_on_cuda: bool, smoothing: bool = False) -> tuple[str, str | None]:
    """(decoder to use, a fallback line to print or None). ``pyav-cuda`` decodes into the
    engine's GPU when hardware decoding starts here, the engine runs on CUDA and no temporal
    smoothing needs the frames on the CPU; otherwise it falls back to ``auto`` (PyAV on the CPU)
    with the reason. ``auto`` stays on the CPU until the GPU check has verified the NVDEC path
    on hardware (README, GPU section)."""
    if requested not in DECODERS:
        raise InputError(f"unknown decoder {requested!r}; choose from {', '.join(DECODERS)}")
    if requested != "pyav-cuda":
        return requested, None
    if smoothing:
        why = "--temporal-smoothing computes optical flow from the frames on the CPU"
    elif not engine_on_cuda:
        why = "the engine runs on the CPU, so GPU frames would only be copied back"
    else:
        hw = hw_decode_support()
        if hw.usable:
            return "pyav-cuda", None
        why = hw.reason
    return "auto", f"decoder: --decoder pyav-cuda unavailable ({why}); using PyAV on the CPU"


def resolve_codec(requested: str) -> tuple[str, str | None]:
    """(encoder to use, a fallback line or None). ``auto``: h264_nvenc where it opens, else
    libx264 (said so only on a machine with a CUDA GPU, where NVENC was a real possibility); an
    explicit NVENC codec that does not open falls back to libx264 with the reason."""
    if requested == "auto":
        nvenc = encoder_support("h264_nvenc")
        if nvenc.usable:
            return "h264_nvenc", None
        return CPU_CODEC, (f"encoder: {CPU_CODEC} on the CPU (h264_nvenc: {nvenc.reason})" if _gpu_name() else None)
    if requested in NVENC_CODECS:
        support = encoder_support(requested)
        if not support.usable:
            return CPU_CODEC, f"encoder: --codec {requested} unavailable ({support.reason}); using {CPU_CODEC}"
    return requested, None


def main() -> int:
    """``python -m rtstyle.gpu.capabilities``: what this machine's video path can use, and why."""
    for cap in (*decoder_support().values(), *codec_support().values()):
        print(cap.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
