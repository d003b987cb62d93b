"""How an AdaIN model generalises: its losses on the styles it trained on against styles it never saw.

For every style image in ``--styles`` and every photo in ``--images`` (photos none of the models
trained on), with the model's own objective (``trainers.adain``) at alpha 1:

* style distance: the mean/std style loss (relu1_1..relu4_1, unweighted) between the output and
  the style image, and the same for the unstylized photo; ``style_reduction`` = 1 - output/photo
  is how much of the way from the photo to the style the output went;
* content distance: MSE between the output's relu4_1 features and the AdaIN target.

Each style is marked "trained" or "held out" from the checkpoint's metadata. Writes
``<out>.json`` and ``<out>.md``::

    python -m rtstyle.benchmarks.adain_eval --model adain.safetensors --styles ../shared/data/styles \
        --images rtstyle/assets/samples/photos --out benchmarks/results/adain-2026-11-24
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
from pathlib import Path
from typing import Any

import torch

from rtstyle.argparsing import ArgumentParser
from rtstyle.checkpoint import load_checkpoint
from rtstyle.errors import InputError
from rtstyle.frames import IMAGE_EXTENSIONS, load_image, numpy_to_float
from rtstyle.losses import ADAIN_STYLE_LAYERS, feature_loss, mean_std_style_loss
from rtstyle.models import resolve_model
from rtstyle.nets import ENCODER_LAYER, AdaINNet, adain, channel_mean_std
from rtstyle.vgg import load_vgg16

from .report import write_result


def _images(folder: Path) -> list[Path]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) if Path(folder).is_dir() else []
    if not files:
        raise InputError(f"no images in {folder}")
    return files


@torch.inference_mode()
def evaluate(model: str | Path, styles: Path, images: Path, size: int = 256, style_size: int = 256) -> dict[str, Any]:
    ckpt = load_checkpoint(resolve_model(model), task="style")
    if not isinstance(ckpt.model, AdaINNet):
        raise InputError(f"{model} is a {ckpt.config.arch!r} model, not AdaIN")
    net = ckpt.model.float().eval()
    vgg = load_vgg16(last_layer=ENCODER_LAYER)
    trained = {s["name"] for s in ckpt.meta.get("styles", [])}
    photos = [numpy_to_float(load_image(p, max_side=size)) for p in _images(images)]
    rows = []
    for style_path in _images(styles):
        style = numpy_to_float(load_image(style_path, max_side=style_size))
        style_feats = vgg(style, ADAIN_STYLE_LAYERS)
        mean, std = channel_mean_std(style_feats[ENCODER_LAYER])
        per_photo = []
        for photo in photos:
            out = net(photo, mean, std)
            out_feats, photo_feats = vgg(out, ADAIN_STYLE_LAYERS), vgg(photo, ADAIN_STYLE_LAYERS)
            targets = [style_feats[n] for n in ADAIN_STYLE_LAYERS]
            style_out = mean_std_style_loss([out_feats[n] for n in ADAIN_STYLE_LAYERS], targets).item()
            style_photo = mean_std_style_loss([photo_feats[n] for n in ADAIN_STYLE_LAYERS], targets).item()
            target = adain(net.encode(photo), mean, std)
            per_photo.append({"style_loss": style_out, "photo_style_loss": style_photo,
                              "content_loss": feature_loss(out_feats[ENCODER_LAYER], target).item()})
        row = {"style": style_path.name, "seen": "trained" if style_path.name in trained else "held out"}
        for key in ("style_loss", "photo_style_loss", "content_loss"):
            row[key] = statistics.fmean(p[key] for p in per_photo)
        row["style_reduction"] = 1.0 - row["style_loss"] / row["photo_style_loss"]
        rows.append(row)
    return {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "model": str(model),
            "train": ckpt.meta.get("train", {}), "photos": len(photos), "size": size, "styles": rows}


def markdown(result: dict[str, Any]) -> str:
    train = result["train"]
    lines = [f"# AdaIN generalisation, {result['date']}", "",
             f"- model: {Path(result['model']).name} ({train.get('iterations', '?')} iterations, batch "
             f"{train.get('batch_size', '?')}, {train.get('image_size', '?')} px, {train.get('device', '?')})",
             f"- {result['photos']} held-out photos at {result['size']} px; alpha 1; style distance: mean/std loss at "
             "relu1_1..relu4_1 (unweighted); reduction = 1 - output / unstylized photo", "",
             "| style | seen in training | style distance: photo -> output | reduction | content distance |",
             "|---|---|---|---|---|"]
    for r in result["styles"]:
        lines.append(f"| {r['style']} | {r['seen']} | {r['photo_style_loss']:.3g} -> {r['style_loss']:.3g} | "
                     f"{r['style_reduction']:.0%} | {r['content_loss']:.3g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="AdaIN checkpoint or bundled name")
    p.add_argument("--styles", type=Path, required=True, help="folder of style images (trained and held out)")
    p.add_argument("--images", type=Path, required=True, help="folder of photos none of the styles trained on")
    p.add_argument("--size", type=int, default=256, help="longer side of the photos (px)")
    p.add_argument("--out", type=Path, required=True, help="output prefix (no extension)")
    args = p.parse_args(argv)
    result = evaluate(args.model, args.styles, args.images, args.size)
    text = markdown(result)
    write_result(args.out, result, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
