"""Decode video files straight into RGB tensors on a device: NVDEC frames stay on the GPU.

``DeviceVideoReader(path, device, hardware=True)`` is a ``video.VideoReader`` (same time window,
timestamp repair and truncation warnings) whose frames carry ``image`` = uint8 (H, W, 3) RGB
torch tensor on ``device`` instead of a numpy array:

* hardware (``device`` CUDA, ``hardware=True``): PyAV decodes with ``HWAccel("cuda",
  is_hw_owned=True)``; each frame's NV12/P010 planes reach torch by DLPack without leaving the
  GPU and ``colour.yuv_to_rgb`` converts them with the stream's matrix, range and siting;
* software (no usable NVDEC for this stream, or a CPU ``device``): FFmpeg decodes on the CPU,
  4:2:0 frames are repacked to NV12/P010 (half the bytes of RGB to upload) and converted on the
  device the same way; other layouts (4:4:4, RGB, odd sizes) are converted by swscale.

GPU work (the conversion, the resize) is queued on the calling thread's current CUDA stream: the
pipeline's decode thread has a stream of its own, so decoding never serialises with the engine on
the legacy default stream. That stream first waits (on the GPU) for FFmpeg's copy into the decoder
surface, which FFmpeg queues on the legacy default stream; the surface goes back to FFmpeg's pool
only once an event says the conversion has read it (``MAX_HELD`` surfaces at most are held), so
the host never waits for a frame's conversion.

``chroma`` is how 4:2:0 chroma is upsampled: ``"auto"`` (the default) as the CPU reader's
conversion (FFmpeg's default) does for the format, so ``--decoder pyav-cuda`` and the CPU decoders
give the same picture; ``"bilinear"`` interpolates between sited chroma samples (swscale's accurate
conversion), ``"nearest"`` repeats each over its 2x2 block.

Which path each stream took, and why, is in ``reader.path_notes`` (fallbacks also in
``reader.warnings``, which ``stylize`` prints). The CPU tests run the software path end to end
(DLPack, conversion, windowing); only the NVDEC part needs a GPU.

``device_file_source(path, device, ...)``: a pipeline ``Source`` (``sources.FileSource`` with this
reader), as ``rtstyle stylize --decoder pyav-cuda`` uses it.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..sources import FileSource
from ..video import VideoReader
from .capabilities import cuda_hwaccel, ffmpeg_errors_in_exceptions
from .colour import CHROMA_AUTO, CHROMA_UPSAMPLING, SEMI_PLANAR, spec_for, yuv_to_rgb

# Software pixel formats repacked to a semi-planar one for the device conversion.
_REPACK = {"yuv420p": "nv12", "yuvj420p": "nv12", "nv12": "nv12", "yuv420p10le": "p010le", "p010le": "p010le"}
_AVCOL_RANGE_JPEG = 2
MAX_HELD = 2  # decoder surfaces kept from FFmpeg's pool while their conversion may still be running


def _planes(frame) -> tuple[torch.Tensor, torch.Tensor]:
    # PyAV refuses a stream argument for CUDA planes, and torch.from_dlpack passes one to an
    # object with __dlpack__: hand torch the capsule itself (stream=None; ordering is ours).
    return torch.from_dlpack(frame.planes[0].__dlpack__()), torch.from_dlpack(frame.planes[1].__dlpack__())


def resize_on_device(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (H, W, 3) -> (height, width, 3) for ``size`` = (width, height): antialiased bilinear
    when shrinking (close to OpenCV's INTER_AREA), bilinear when enlarging."""
    w, h = size
    if image.shape[:2] == (h, w):
        return image
    x = image.permute(2, 0, 1).unsqueeze(0).float()
    shrink = w * h < image.shape[0] * image.shape[1]
    y = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
    return y.round_().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous()


class DeviceVideoReader(VideoReader):
    """Frames of ``path`` as RGB tensors on ``device``; see the module docstring."""

    def __init__(self, path: str | Path, device: torch.device | str, start: float | None = None,
                 duration: float | None = None, hardware: bool = True, size: tuple[int, int] | None = None,
                 chroma: str = CHROMA_AUTO):
        super().__init__(path, start, duration, decoder="pyav")
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        if chroma not in (CHROMA_AUTO, *CHROMA_UPSAMPLING):
            raise InputError(f"unknown chroma upsampling {chroma!r}; choose from {[CHROMA_AUTO, *CHROMA_UPSAMPLING]}")
        self.hardware = hardware and self.device.type == "cuda"
        self.size = size
        self.chroma = chroma
        self.path_notes: list[str] = []
        self.frames_on_device = 0  # frames that never left the GPU (NVDEC surfaces converted in place)
        self._noted: set[str] = set()
        self._held: deque = deque()  # (event, surface references) of conversions that may still be running

    def _note(self, text: str, fallback: bool = False) -> None:
        """Say once per reader how frames were handled; a ``fallback`` (frames leaving the GPU
        path) is also a warning."""
        if text not in self._noted:
            self._noted.add(text)
            self.path_notes.append(text)
            if fallback:
                self.warnings.append(f"{self.path.name}: {text}")

    def _open(self):
        import av

        if not self.hardware:
            return av.open(str(self.path), "r")
        # Frames stay in GPU memory, decoded in torch's context (cuda_hwaccel), so the DLPack
        # pointers are valid in torch.
        hw = cuda_hwaccel(self.device.index or 0, allow_software_fallback=True)
        try:
            with ffmpeg_errors_in_exceptions():
                return av.open(str(self.path), "r", hwaccel=hw)
        except av.FFmpegError as exc:
            raise InputError(f"cannot open {self.path} with CUDA decoding ({exc}); use --decoder pyav") from None

    def _iter_pyav(self) -> Iterator[tuple[torch.Tensor, int | None, int | None]]:
        import av

        with self._open() as container:
            stream = container.streams.video[0]
            if not self.hardware:
                stream.thread_type = "AUTO"  # NVDEC decodes on the GPU: frame threads would only add copies
            if self.start > 0:
                try:
                    container.seek(int(self.start / stream.time_base), stream=stream, backward=True)
                except av.FFmpegError:
                    pass
            codec = stream.codec_context.name
            reorder = self._reorder()
            try:
                for frame in self._decode_pyav(container, stream, reorder):
                    pts = reorder.pop() if reorder is not None else frame.pts
                    image = self._to_device(frame, codec)
                    if self.size is not None:
                        image = resize_on_device(image, self.size)
                    yield image, pts, frame.duration or None
            finally:
                self._release(keep=0)  # every surface back before the container (and its pool) closes

    def _reorder(self):
        """The base reader's own timestamp repair (not a copy), from whichever module defines it."""
        repair = sys.modules[VideoReader.__module__]._PacketTimestamps
        return repair() if self.info.decode_order_timestamps else None

    def _to_device(self, frame, codec: str) -> torch.Tensor:
        if frame.format.name == "cuda":
            return self._convert_cuda(frame, codec)
        if self.hardware:
            self._note(f"NVDEC did not take this {codec} stream ({frame.format.name}); FFmpeg decoded it on the CPU",
                       fallback=True)
        return self._convert_software(frame, codec)

    def _spec(self, frame, sw_format: str, codec: str):
        spec, notes = spec_for(frame.colorspace, frame.color_range, sw_format, codec, self.chroma)
        for n in notes:
            self._note(n)
        return spec

    def _convert_cuda(self, frame, codec: str) -> torch.Tensor:
        sw = frame.sw_format.name if frame.sw_format is not None else "?"
        if sw not in SEMI_PLANAR or frame.width % 2 or frame.height % 2:
            # DLPack export covers NV12/P010/P016 only: download this frame through FFmpeg.
            self._note(f"GPU frames in {sw} at {frame.width}x{frame.height} are copied to the host for conversion",
                       fallback=True)
            return self._convert_software(frame.reformat(format="rgb24"), codec)
        y, uv = _planes(frame)
        current = torch.cuda.current_stream(self.device)
        # FFmpeg fills its surfaces on the legacy default stream of the same (primary) context.
        current.wait_stream(torch.cuda.default_stream(self.device))
        rgb = yuv_to_rgb(y, uv, self._spec(frame, sw, codec))
        # The planes are decoder surfaces: they may return to FFmpeg's pool (and be refilled) only
        # once the conversion has read them. Keep them until this event has passed.
        done = torch.cuda.Event()
        done.record(current)
        self._held.append((done, frame, y, uv))
        self._release(keep=MAX_HELD)
        self.frames_on_device += 1
        return rgb

    def _release(self, keep: int) -> None:
        """Hand back the surfaces whose conversion has finished, and wait for the oldest ones while
        more than ``keep`` are held (normally long finished: they were queued frames ago)."""
        while self._held and (len(self._held) > keep or self._held[0][0].query()):
            self._held.popleft()[0].synchronize()

    def _convert_software(self, frame, codec: str) -> torch.Tensor:
        name = frame.format.name
        target = _REPACK.get(name)
        if target is None or frame.width % 2 or frame.height % 2:
            rgb = torch.from_numpy(frame.to_ndarray(format="rgb24"))  # swscale, as the CPU reader does
            return rgb.to(self.device, non_blocking=False)
        packed = frame if name == target else frame.reformat(format=target)  # lossless repacking
        y, uv = _planes(packed)
        spec = self._spec(frame, target, codec)
        if name.startswith("yuvj") and frame.color_range != _AVCOL_RANGE_JPEG:
            spec = type(spec)(spec.matrix, True, spec.bits, spec.shift, spec.chroma, spec.siting)
        if self.device.type != "cpu":
            y, uv = y.to(self.device), uv.to(self.device)  # 1.5 bytes a pixel over the bus instead of 3
        return yuv_to_rgb(y, uv, spec)


def device_file_source(path: str | Path, device: torch.device | str, start: float | None = None,
                       duration: float | None = None, size: tuple[int, int] | None = None,
                       hardware: bool = True) -> FileSource:
    """A pipeline source whose frames are tensors on ``device`` (``FileSource`` with a
    ``DeviceVideoReader``); ``size`` (width, height) resizes them there."""
    return FileSource(reader=DeviceVideoReader(path, device, start, duration, hardware=hardware, size=size))
