"""The README's figures for style strength and tiled upscaling (issue 29), from the bundled models
and sample photos, so they can be remade from a fresh clone:

    python -m rtstyle.benchmarks.readme_figures --out docs/images

* ``strength.jpg``: two ways to weaken a style, at strengths 0 .. 1, for two bundled styles.
  *output space* is what ``--strength`` does (``rtstyle.strength``: the stylized frame blended with
  the photo); *feature space* scales the change the network's residual blocks make to its
  features (``h + s * (blocks(h) - h)``, decoded as usual), the Johnson-network counterpart of
  AdaIN's ``--alpha``. It needs the network's insides, so it could only ever run on the torch
  backend; the figure is the evidence for choosing the output space (README, "Style strength").
* ``upscale_tiles.jpg``: a photo crop through ``sr_x4`` whole and in 48-px tiles (pad 16), through
  the same ``Tiling`` path as ``rtstyle upscale --tile``, with the difference to the whole-frame
  output magnified 32x, beside the same tiling without a pad (its seams show).

Prints the numbers the README quotes (largest tile difference with and without the pad, and how far
feature-space strength 0 stays from the photo).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rtstyle.checkpoint import load_checkpoint
from rtstyle.engine import EngineOptions, open_engine
from rtstyle.frames import MILLISECONDS, Frame, float_to_numpy, load_image, numpy_to_float, save_image
from rtstyle.gallery import _fit, _label
from rtstyle.models import resolve_model
from rtstyle.nets.common import ResidualBlock, pad_to_multiple, to_pixel_range
from rtstyle.pipeline import PipelineConfig, run_pipeline
from rtstyle.sources import Source
from rtstyle.strength import apply_strength
from rtstyle.tiles import DEFAULT_PAD, Tiling

SAMPLES = Path(__file__).resolve().parents[1] / "rtstyle" / "assets" / "samples" / "photos"
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
STYLES = ("starry_night", "great_wave")
TILE = 48


def _engine(model: str):
    return open_engine(model, "torch", EngineOptions(device="cpu", precision="fp32"))


@torch.inference_mode()
def feature_space(net: torch.nn.Module, image: np.ndarray, strength: float) -> np.ndarray:
    """A Johnson network (``nets.StyleNet``) with its residual blocks' change scaled by ``strength``."""
    layers = list(net.body)
    blocks = [i for i, layer in enumerate(layers) if isinstance(layer, ResidualBlock)]
    x = numpy_to_float(image)
    h, w = x.shape[-2:]
    features = torch.nn.Sequential(*layers[:blocks[0]])(pad_to_multiple(x, net.stride))
    changed = torch.nn.Sequential(*layers[blocks[0]:blocks[-1] + 1])(features)
    y = torch.nn.Sequential(*layers[blocks[-1] + 1:])(features + strength * (changed - features))
    return float_to_numpy(to_pixel_range(F.pad(y, (0, w - y.shape[-1], 0, h - y.shape[-2]))))[0]


def strength_figure(out: Path, photo: Path, size: int = 192) -> dict[str, float]:
    """Rows: each style in output space, then in feature space; columns: the strengths."""
    image = _fit(load_image(photo), size)
    rows, gaps = [], {}
    for model in STYLES:
        engine = _engine(model)
        net = load_checkpoint(resolve_model(model), task="style").model.float().eval()
        stylized = engine(image)
        frames = torch.from_numpy(image)[None]
        out_row = [_label(apply_strength(frames, torch.from_numpy(stylized)[None], s)[0].numpy(),
                          f"{model} {s:g} output") for s in STRENGTHS]
        feat = [feature_space(net, image, s) for s in STRENGTHS]
        feat_row = [_label(f, f"{model} {s:g} feature") for f, s in zip(feat, STRENGTHS)]
        rows += [np.concatenate(out_row, axis=1), np.concatenate(feat_row, axis=1)]
        gaps[f"{model}: feature space at 0, mean |difference| to the photo"] = float(
            np.abs(feat[0].astype(np.float64) - image).mean())
    save_image(out, np.concatenate(rows, axis=0), quality=90)
    return gaps


class _One(Source):
    def __init__(self, image: np.ndarray):
        super().__init__()
        self.image = image

    def read(self) -> Frame | None:
        if self.frames_read:
            return None
        self.frames_read = 1
        return Frame(self.image, 0, MILLISECONDS, 0)


def tiled(engine, image: np.ndarray, tile: int, pad: int) -> np.ndarray:
    """``image`` through ``engine`` the way ``rtstyle upscale --tile`` runs it."""
    out: list[np.ndarray] = []
    tiling = Tiling(_One(image), lambda result, frame: out.append(result.copy()), tile, pad)
    run_pipeline(tiling.source, engine, tiling.sink, PipelineConfig(batch_size=4))
    return out[0]


def upscale_figure(out: Path, photo: Path, crop: int = 96, box: tuple[int, int] | None = None) -> dict[str, float]:
    """Input (nearest), bicubic, sr_x4 whole, sr_x4 tiled, and the magnified differences."""
    full = load_image(photo)
    top, left = box if box is not None else ((full.shape[0] - crop) // 2, (full.shape[1] - crop) // 2)
    image = np.ascontiguousarray(full[top:top + crop, left:left + crop])
    engine = _engine("sr_x4")
    whole = engine(image)
    with_pad, without_pad = tiled(engine, image, TILE, DEFAULT_PAD), tiled(engine, image, TILE, 0)
    bicubic = float_to_numpy(F.interpolate(numpy_to_float(image), scale_factor=engine.scale, mode="bicubic",
                                           align_corners=False).clamp(0, 1))[0]

    def magnified(a: np.ndarray) -> np.ndarray:
        return np.clip(np.abs(a.astype(int) - whole.astype(int)) * 32, 0, 255).astype(np.uint8)

    panels = [(np.repeat(np.repeat(image, engine.scale, 0), engine.scale, 1), f"input {crop}x{crop}"), (bicubic, "bicubic x4"), (whole, "sr_x4 whole"),
              (with_pad, f"sr_x4 {TILE}px tiles, pad {DEFAULT_PAD}"), (magnified(with_pad), f"pad {DEFAULT_PAD}: |tiles - whole| x32"),
              (magnified(without_pad), "pad 0: |tiles - whole| x32")]
    labelled = [_label(p, text) for p, text in panels]
    save_image(out, np.concatenate([np.concatenate(labelled[:3], axis=1), np.concatenate(labelled[3:], axis=1)]),
               quality=90)
    return {f"pad {DEFAULT_PAD}: largest |tiled - whole|": int(np.abs(with_pad.astype(int) - whole.astype(int)).max()),
            "pad 0: largest |tiled - whole|": int(np.abs(without_pad.astype(int) - whole.astype(int)).max())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rtstyle.benchmarks.readme_figures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--out", type=Path, required=True, help="folder for strength.jpg and upscale_tiles.jpg")
    p.add_argument("--photo", type=Path, default=SAMPLES / "caer_puppy.jpg", help="the strength figure's photo")
    p.add_argument("--sr-photo", type=Path, default=SAMPLES / "skimage_astronaut.jpg", help="the upscale figure's photo")
    p.add_argument("--size", type=int, default=192, help="side of each strength panel in px (default: 192)")
    p.add_argument("--crop", type=int, default=96, help="side of the upscale crop in px (default: 96)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    numbers = strength_figure(args.out / "strength.jpg", args.photo, args.size)
    box = (16, 96) if args.sr_photo == SAMPLES / "skimage_astronaut.jpg" else None  # her face
    numbers |= upscale_figure(args.out / "upscale_tiles.jpg", args.sr_photo, args.crop, box)
    for name, value in numbers.items():
        print(f"{name}: {value:.3g}" if isinstance(value, float) else f"{name}: {value}")
    print(f"wrote {args.out / 'strength.jpg'} and {args.out / 'upscale_tiles.jpg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
