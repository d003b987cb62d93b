"""Semi-planar YUV 4:2:0 (NV12, P010, P016) to uint8 RGB in torch, on whatever device the planes are on.

Hardware decoders (NVDEC through FFmpeg) hand out frames as a luma plane (H, W) and an interleaved
chroma plane (H/2, W/2, 2); converting them where they are keeps 1080p frames off the PCIe bus.
The arithmetic is FFmpeg's (swscale with full-precision chroma, accurate rounding), checked in
the tests against PyAV's own conversion within one level for BT.601/BT.709/BT.2020 x limited/full
range, 8 and 10 bits:

* ``yuv_to_rgb(y, uv, spec) -> (H, W, 3) uint8``; ``spec`` says the matrix, the range, the bit depth
  and how chroma is upsampled (``bilinear``: chroma sited between luma samples, as swscale's
  ``BILINEAR | FULL_CHR_H_INT``; ``nearest``: each chroma sample covers its 2x2 luma block).
* ``spec_for(colorspace, color_range, sw_format)``: the spec of a stream from FFmpeg's colour tags
  (AVColorSpace / AVColorRange integers) and its pixel format, plus a note when a tag was guessed.
  Its ``chroma="auto"`` upsamples as FFmpeg's default conversion does (PyAV's ``to_ndarray``, so
  the CPU reader): 8-bit 4:2:0 takes swscale's unscaled YUV->RGB path, which repeats each chroma
  sample over its 2x2 block (``nearest``), deeper formats its scaler, which interpolates. Decoding
  on the GPU or the CPU then gives the same picture within 3 levels; bilinear chroma against the
  CPU reader's repeated chroma was 4 levels off on average (19 at colour edges), and a style
  network made that 10.

The other way, for the encoder: ``rgb_to_nv12(rgb, spec)`` turns uint8 RGB frames (H, W, 3) or
(N, H, W, 3) into 8-bit NV12 (H*3/2, W) on their device with swscale's own arithmetic for RGB ->
4:2:0 (chroma: pairs averaged across, then a [1, 3, 3, 1]/8 filter down), within one level of the
CPU writer's conversion on any picture, noise included. With the engine on a GPU this runs before
the copy back: half the bytes cross the bus and the host skips swscale's RGB->YUV pass (3-5 ms per
1080p frame). ``output_spec(colorspace, color_range)`` is the conversion ``VideoWriter`` asks
swscale for with the same tags (untagged: BT.601, limited range, swscale's defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from ..errors import InputError

# Kr, Kb of each matrix (ITU-R BT.601, BT.709, BT.2020 non-constant luminance).
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
CHROMA_UPSAMPLING = ("bilinear", "nearest")
CHROMA_AUTO = "auto"  # spec_for: as FFmpeg's default conversion upsamples this format
# Where chroma sample (0, 0) sits, in luma pixels (x, y), by AVChromaLocation name. "left" is the
# default of MPEG-2, H.264 and HEVC (their decoders tag frames with it); untagged frames are
# treated as "center" by swscale.
CHROMA_SITING = {"left": (0.0, 0.5), "center": (0.5, 0.5), "topleft": (0.0, 0.0), "top": (0.5, 0.0),
                 "bottomleft": (0.0, 1.0), "bottom": (0.5, 1.0)}
# Codecs whose decoders tag 4:2:0 frames "left" unless the stream says otherwise (PyAV does not
# expose the tag itself).
_LEFT_SITED_CODECS = ("h264", "hevc", "mpeg2video", "vvc")
# FFmpeg AVColorSpace values -> matrix. 5 (BT470BG) and 6 (SMPTE170M) are both BT.601.
_AVCOL_SPC = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020"}
_AVCOL_SPC_UNSPECIFIED = 2
# FFmpeg AVColorRange: 0 unspecified, 1 MPEG (limited), 2 JPEG (full).
_AVCOL_RANGE_JPEG = 2
# Semi-planar formats: (significant bits, how far the samples are shifted up in their 16-bit word).
SEMI_PLANAR = {"nv12": (8, 0), "p010le": (10, 6), "p016le": (16, 0)}


@dataclass(frozen=True)
class YuvSpec:
    matrix: str = "bt709"
    full_range: bool = False
    bits: int = 8  # significant bits per sample
    shift: int = 0  # P010 keeps its 10 bits in the top of 16: samples are value << 6
    chroma: str = "bilinear"
    siting: str = "center"

    def __post_init__(self) -> None:
        if self.matrix not in MATRICES:
            raise InputError(f"unknown colour matrix {self.matrix!r}; choose from {sorted(MATRICES)}")
        if self.chroma not in CHROMA_UPSAMPLING:
            raise InputError(f"unknown chroma upsampling {self.chroma!r}; choose from {list(CHROMA_UPSAMPLING)}")
        if self.siting not in CHROMA_SITING:
            raise InputError(f"unknown chroma siting {self.siting!r}; choose from {list(CHROMA_SITING)}")
        if not 8 <= self.bits <= 16 or self.shift < 0 or self.bits + self.shift > 16:
            raise InputError(f"unsupported sample layout: {self.bits} bits shifted by {self.shift}")


def spec_for(colorspace: int, color_range: int, sw_format: str, codec: str = "", chroma: str = CHROMA_AUTO
             ) -> tuple[YuvSpec, list[str]]:
    """The conversion for a stream's FFmpeg tags and codec name; notes say what was guessed.
    Untagged streams get FFmpeg's own defaults (BT.601, limited range), and ``chroma="auto"``
    FFmpeg's default upsampling for the format, so a stream looks the same whichever decoder
    (this one or PyAV's software path) reads it."""
    if sw_format not in SEMI_PLANAR:
        raise InputError(f"pixel format {sw_format!r} cannot be converted on the GPU; supported: {sorted(SEMI_PLANAR)}")
    notes = []
    colorspace, color_range = int(colorspace), int(color_range)
    if colorspace in _AVCOL_SPC:
        matrix = _AVCOL_SPC[colorspace]
    else:
        matrix = "bt601"
        what = "untagged" if colorspace == _AVCOL_SPC_UNSPECIFIED else f"tagged with unsupported AVColorSpace {colorspace}"
        notes.append(f"colour matrix {what}: BT.601, as FFmpeg's software conversion assumes")
    bits, shift = SEMI_PLANAR[sw_format]
    siting = "left" if codec in _LEFT_SITED_CODECS else "center"
    if chroma == CHROMA_AUTO:
        # swscale's default (no ACCURATE_RND) converts 8-bit 4:2:0 to RGB on its unscaled path,
        # which ignores the interpolation flags and repeats chroma; 10/16-bit go through the scaler.
        chroma = "nearest" if bits == 8 else "bilinear"
    return YuvSpec(matrix, color_range == _AVCOL_RANGE_JPEG, bits, shift, chroma, siting), notes


def _coefficients(spec: YuvSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(3x3 matrix, offset) taking raw (Y, U, V) sample values to RGB in [0, 255] before rounding."""
    kr, kb = MATRICES[spec.matrix]
    kg = 1.0 - kr - kb
    unit = float(1 << spec.shift)  # P010: one level of the 10-bit value is 64 in the stored word
    s = float(1 << (spec.bits - 8))
    if spec.full_range:
        y_scale = c_scale = 1.0 / ((1 << spec.bits) - 1)
        y_off = 0.0
    else:
        y_scale, c_scale = 1.0 / (219.0 * s), 1.0 / (224.0 * s)
        y_off = 16.0 * s
    c_off = float(1 << (spec.bits - 1))
    # R = Y' + 2(1-Kr) V';  G = Y' - 2Kb(1-Kb)/Kg U' - 2Kr(1-Kr)/Kg V';  B = Y' + 2(1-Kb) U'
    rows = [
        (1.0, 0.0, 2.0 * (1.0 - kr)),
        (1.0, -2.0 * kb * (1.0 - kb) / kg, -2.0 * kr * (1.0 - kr) / kg),
        (1.0, 2.0 * (1.0 - kb), 0.0),
    ]
    scales = (y_scale, c_scale, c_scale)
    m = torch.tensor([[255.0 * r[j] * scales[j] / unit for j in range(3)] for r in rows], dtype=torch.float64)
    offsets = torch.tensor([y_off * unit, c_off * unit, c_off * unit], dtype=torch.float64)
    return m, -(m @ offsets)


@lru_cache(maxsize=32)
def _taps(n_out: int, n_in: int, mode: str, offset: float, device: torch.device
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights upsampling ``n_in = n_out / 2`` chroma samples to ``n_out``
    pixels: chroma sample i sits at luma position 2i + ``offset``; the edges repeat. ``nearest``
    gives each chroma sample the two luma pixels it covers, whatever the siting."""
    x = torch.arange(n_out, dtype=torch.float64)
    if mode == "nearest":
        i0 = (x // 2).clamp(max=n_in - 1).long()
        return i0.to(device), i0.to(device), torch.zeros(n_out, dtype=torch.float32, device=device)
    pos = ((x - offset) / 2.0).clamp(0.0, n_in - 1.0)
    i0 = pos.floor().long()
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0.to(device), i1.to(device), (pos - i0).float().to(device)


def _upsample(c: torch.Tensor, height: int, width: int, mode: str, siting: str) -> torch.Tensor:
    """(h, w, 2) float chroma -> (height, width, 2)."""
    x_off, y_off = CHROMA_SITING[siting]
    r0, r1, fy = _taps(height, c.shape[0], mode, y_off, c.device)
    c = torch.lerp(c.index_select(0, r0), c.index_select(0, r1), fy[:, None, None]) if mode == "bilinear" else c.index_select(0, r0)
    c0, c1, fx = _taps(width, c.shape[1], mode, x_off, c.device)
    return torch.lerp(c.index_select(1, c0), c.index_select(1, c1), fx[None, :, None]) if mode == "bilinear" else c.index_select(1, c0)


def _as_float(plane: torch.Tensor) -> torch.Tensor:
    if plane.dtype == torch.uint16:  # DLPack exports 16-bit planes as uint16, which few torch ops take
        return plane.to(torch.int32).float()
    if plane.dtype not in (torch.uint8, torch.int16, torch.int32):
        raise InputError(f"YUV planes must be uint8 or uint16, got {plane.dtype}")
    return plane.float()


def yuv_to_rgb(y: torch.Tensor, uv: torch.Tensor, spec: YuvSpec) -> torch.Tensor:
    """Luma (H, W) and interleaved chroma (H/2, W/2, 2) -> RGB (H, W, 3) uint8 on the planes'
    device. Strided planes (FFmpeg's padded line sizes) are read as they are. Sides must be even:
    for odd sides swscale stretches the chroma by (H+1)/2 : H rather than 1 : 2, and PyAV's DLPack
    export drops the last chroma row and column, so callers decode those on the CPU instead."""
    if y.dim() != 2 or uv.dim() != 3 or uv.shape[-1] != 2:
        raise InputError(f"expected luma (H, W) and chroma (H/2, W/2, 2), got {tuple(y.shape)} and {tuple(uv.shape)}")
    height, width = y.shape
    if height % 2 or width % 2 or height < 2 or width < 2:
        raise InputError(f"4:2:0 frames converted on the device need even sides, got {width}x{height}")
    if tuple(uv.shape[:2]) != (height // 2, width // 2):
        raise InputError(f"chroma {tuple(uv.shape)} does not fit 4:2:0 luma {tuple(y.shape)}")
    if y.device != uv.device:
        raise InputError(f"luma on {y.device} but chroma on {uv.device}")
    m, offset = (t.to(device=y.device, dtype=torch.float32) for t in _coefficients(spec))
    chroma = _upsample(_as_float(uv), height, width, spec.chroma, spec.siting)  # (H, W, 2)
    luma = _as_float(y)
    # rgb = M[:, 0] * Y + M[:, 1:] @ (U, V) + offset, all in one pass over the frame.
    rgb = torch.addmm(offset, chroma.reshape(-1, 2), m[:, 1:].t()).reshape(height, width, 3)
    rgb.addcmul_(luma.unsqueeze(-1), m[:, 0])
    return rgb.round_().clamp_(0.0, 255.0).to(torch.uint8)


def output_spec(colorspace: int | None, color_range: int | None) -> YuvSpec:
    """The RGB -> YUV conversion ``VideoWriter`` makes (swscale, given the output's AVColorSpace and
    AVColorRange tags; 0/None: untagged), as a ``YuvSpec`` for ``rgb_to_nv12``."""
    matrix = _AVCOL_SPC.get(int(colorspace or 0), "bt601")  # swscale's default matrix is BT.601
    return YuvSpec(matrix, int(color_range or 0) == _AVCOL_RANGE_JPEG)


def _forward(spec: YuvSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(3x3 matrix, offset) taking RGB in [0, 255] to 8-bit (Y, U, V) before rounding: the
    inverse of ``_coefficients`` for 8-bit samples."""
    if spec.bits != 8 or spec.shift:
        raise InputError(f"RGB -> NV12 writes 8-bit samples; got {spec.bits} bits shifted by {spec.shift}")
    kr, kb = MATRICES[spec.matrix]
    kg = 1.0 - kr - kb
    y_scale, c_scale, y_off = (255.0, 255.0, 0.0) if spec.full_range else (219.0, 224.0, 16.0)
    rows = [
        (kr, kg, kb),
        (-kr / (2.0 * (1.0 - kb)), -kg / (2.0 * (1.0 - kb)), 0.5),
        (0.5, -kg / (2.0 * (1.0 - kr)), -kb / (2.0 * (1.0 - kr))),
    ]
    scales = (y_scale, c_scale, c_scale)
    m = torch.tensor([[scales[i] * rows[i][j] / 255.0 for j in range(3)] for i in range(3)], dtype=torch.float64)
    return m, torch.tensor([y_off, 128.0, 128.0], dtype=torch.float64)


def rgb_to_nv12(rgb: torch.Tensor, spec: YuvSpec = YuvSpec("bt601")) -> torch.Tensor:
    """uint8 RGB (H, W, 3) or (N, H, W, 3) -> 8-bit NV12 (H*3/2, W) or (N, H*3/2, W) on the same
    device: the luma plane, then the interleaved chroma plane (U, V), filtered as swscale does."""
    batched = rgb.dim() == 4
    x = rgb if batched else rgb.unsqueeze(0)
    if x.dim() != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise InputError(f"expected uint8 RGB (H, W, 3) or (N, H, W, 3), got {rgb.dtype} {tuple(rgb.shape)}")
    n, height, width, _ = x.shape
    if height % 2 or width % 2:
        raise InputError(f"NV12 needs even sides, got {width}x{height}")
    m, offset = (t.to(device=x.device, dtype=torch.float32) for t in _forward(spec))
    f = x.float()
    luma = torch.addmm(offset[:1], f.reshape(-1, 3), m[:1].t()).reshape(n, height, width)
    # Chroma is linear in RGB, so filter RGB at a quarter of the pixels, then convert: pairs of
    # columns averaged, then rows (1, 3, 3, 1)/8 around each pair of rows, the edge rows repeated.
    pairs = f.reshape(n, height, width // 2, 2, 3).mean(dim=3)
    above = torch.cat((pairs[:, :1], pairs[:, 1:-2:2]), dim=1)  # row 2r-1
    below = torch.cat((pairs[:, 2::2], pairs[:, -1:]), dim=1)  # row 2r+2
    mean = (above + 3.0 * pairs[:, 0::2] + 3.0 * pairs[:, 1::2] + below) / 8.0
    chroma = torch.addmm(offset[1:], mean.reshape(-1, 3), m[1:].t()).reshape(n, height // 2, width)
    out = torch.cat((luma, chroma), dim=1).round_().clamp_(0.0, 255.0).to(torch.uint8)
    return out if batched else out[0]
