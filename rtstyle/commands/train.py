"""``rtstyle train style|sr|adain|stylebank|texture``: thin CLI over the ``trainers`` package."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def _common(p: argparse.ArgumentParser, *, image_size: int, iterations: int, data_help: str | None = None) -> None:
    p.add_argument("--data", type=Path, required=data_help is None,
                   help=data_help or "folder tree of training images (jpg/png/webp)")
    p.add_argument("--out", "-o", type=Path, required=True, help="checkpoint to write (.safetensors)")
    p.add_argument("--iterations", type=int, default=iterations)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--image-size", type=int, default=image_size, help="training crop side in pixels")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--resume", type=Path, help="continue from this training checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--workers", type=int, dest="num_workers", help="data-loader processes (default 0 on CPU, 4 on CUDA)")
    p.add_argument("--amp", default="auto", help="auto, off, fp16 or bf16 (CUDA autocast)")
    p.add_argument("--vgg-weights", type=Path, help="VGG16 weights (.pth from torchvision or .safetensors)")
    p.add_argument("--name", help="model name stored in the checkpoint (default: the file name)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a style or super-resolution network")
    tsub = train.add_subparsers(dest="task", metavar="TASK", required=True)

    style = tsub.add_parser("style", help="train a style transformer for one style image")
    style.add_argument("--style", type=Path, required=True, help="style image")
    _common(style, image_size=256, iterations=2000)
    style.add_argument("--style-size", type=int, default=512, help="longer side of the style image (px)")
    style.add_argument("--arch", default="johnson", help="johnson (32 wide, 5 residual) or fast (16 wide, 3)")
    style.add_argument("--width", type=int)
    style.add_argument("--num-residual", type=int)
    style.add_argument("--content-weight", type=float, default=1.0)
    style.add_argument("--style-weight", type=float, default=5.0)
    style.add_argument("--tv-weight", type=float, default=1e-4)
    stab = style.add_argument_group("stabilisation (less flicker on video; see `rtstyle eval temporal`)")
    stab.add_argument("--stability-weight", type=float, default=150.0,
                      help="weight of ||f(T(x)) - T(f(x))||^2 for small random perturbations T (default 150: "
                           "-44%% flicker at +7%% style loss, see README; 0 turns it off)")
    stab.add_argument("--stability-shift", type=float, default=2.0, metavar="PX",
                      help="max random sub-pixel translation of T, in pixels (default 2)")
    stab.add_argument("--stability-noise", type=float, default=0.02, metavar="STD",
                      help="std of the Gaussian noise added to the perturbed input, [0,1] units (default 0.02)")
    stab.add_argument("--stability-brightness", type=float, default=0.05, metavar="DELTA",
                      help="max brightness offset of the perturbed input, [0,1] units (default 0.05)")
    style.set_defaults(func=_run_style)

    sr = tsub.add_parser("sr", help="train an x4 / x8 super-resolution network")
    sr.add_argument("--scale", type=int, default=4, help="4 or 8")
    _common(sr, image_size=288, iterations=2000)
    sr.add_argument("--width", type=int, default=64)
    sr.add_argument("--num-residual", type=int, default=4)
    sr.add_argument("--norm", default="batch", help="batch or none")
    sr.add_argument("--content-weight", type=float, default=1.0)
    sr.add_argument("--pixel-weight", type=float, default=0.0)
    sr.add_argument("--tv-weight", type=float, default=0.0)
    sr.set_defaults(func=_run_sr)

    adain = tsub.add_parser("adain", help="train an AdaIN decoder: any style image at inference (Huang & Belongie 2017)")
    adain.add_argument("--styles", type=Path, required=True, help="folder of style images (paintings) to train on")
    adain.add_argument("--hold-out", action="append", default=[], metavar="NAME",
                       help="style file name in --styles to leave out of training (repeatable), to judge generalisation")
    _common(adain, image_size=256, iterations=20000)
    adain.set_defaults(lr=1e-4)
    adain.add_argument("--style-size", type=int, default=512, help="longer side the style images are loaded at (px)")
    adain.add_argument("--width", type=int, default=64, help="decoder channels at the relu1 level (paper: 64)")
    adain.add_argument("--content-weight", type=float, default=1.0)
    adain.add_argument("--style-weight", type=float, default=10.0)
    adain.set_defaults(func=_run_adain)

    bank = tsub.add_parser("stylebank", help="train a StyleBank: several styles in one network (Chen et al. 2017)")
    bank.add_argument("--style", dest="styles", type=Path, action="append", required=True,
                      help="style image; repeat it, one filter bank per style, in this order")
    bank.add_argument("--base", type=Path, help="trained StyleBank to add the styles to (only the new banks train)")
    _common(bank, image_size=256, iterations=4000)
    bank.add_argument("--style-size", type=int, default=512, help="longer side of the style images (px)")
    bank.add_argument("--width", type=int, default=32)
    bank.add_argument("--bank-layers", type=int, default=2, help="3x3 convs per style bank")
    bank.add_argument("--autoencoder-every", type=int, default=2, metavar="T",
                      help="one auto-encoder step after every T stylization steps (the paper's T+1)")
    bank.add_argument("--content-weight", type=float, default=1.0)
    bank.add_argument("--style-weight", type=float, default=5.0)
    bank.add_argument("--tv-weight", type=float, default=1e-4)
    bank.set_defaults(func=_run_stylebank)

    texture = tsub.add_parser("texture", help="train a multi-scale texture network for one style (Ulyanov et al. 2016)")
    texture.add_argument("--style", type=Path, required=True, help="style image")
    texture.add_argument("--synthesis", action="store_true",
                         help="noise in, texture out (sample it with `rtstyle synth`); needs no --data")
    _common(texture, image_size=256, iterations=2000,
            data_help="folder tree of training images (needed unless --synthesis)")
    texture.add_argument("--style-size", type=int, default=512, help="longer side of the style image (px)")
    texture.add_argument("--scales", type=int, default=5, help="resolutions the generator sees (1..6)")
    texture.add_argument("--width", type=int, default=8, help="channels per scale")
    texture.add_argument("--noise-channels", type=int, help="noise maps per scale (default 3; 8 with --synthesis)")
    texture.add_argument("--noise-std", type=float, default=0.1, help="training-time noise (zero at inference)")
    texture.add_argument("--padding", default="circular", help="circular (the paper) or reflect")
    texture.add_argument("--upsample", default="bilinear",
                         help="--synthesis: bilinear (default: no block edges) or nearest (the paper)")
    texture.add_argument("--content-weight", type=float, default=1.0)
    texture.add_argument("--style-weight", type=float, default=5.0)
    texture.add_argument("--tv-weight", type=float, default=1e-4)
    texture.set_defaults(func=_run_texture)


def _kwargs(args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if k not in ("func", "command", "task")}


def _report(result) -> int:
    losses = ", ".join(f"{k} {v:.4g}" for k, v in result.last_losses.items())
    print(f"checkpoint: {result.checkpoint} ({result.steps} iterations, {result.seconds:.0f} s)")
    print(f"losses:     {losses}")
    print(f"log:        {result.csv}" + (f", plot {result.plot}" if result.plot else ""))
    if result.skipped_images:
        print(f"skipped {result.skipped_images} unreadable image(s)")
    return 0


def _run_style(args: argparse.Namespace) -> int:
    from rtstyle.trainers import StyleTrainConfig, train_style

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    return _report(train_style(StyleTrainConfig(**_kwargs(args))))


def _run_sr(args: argparse.Namespace) -> int:
    from rtstyle.trainers import SRTrainConfig, train_sr

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    return _report(train_sr(SRTrainConfig(**_kwargs(args))))


def _run_adain(args: argparse.Namespace) -> int:
    from rtstyle.trainers import AdaINTrainConfig, train_adain

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    kwargs = _kwargs(args)
    kwargs["hold_out"] = tuple(kwargs["hold_out"])
    return _report(train_adain(AdaINTrainConfig(**kwargs)))


def _run_stylebank(args: argparse.Namespace) -> int:
    from rtstyle.trainers import StyleBankTrainConfig, train_stylebank

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    kwargs = _kwargs(args)
    kwargs["styles"] = tuple(kwargs["styles"])
    return _report(train_stylebank(StyleBankTrainConfig(**kwargs)))


def _run_texture(args: argparse.Namespace) -> int:
    from rtstyle.trainers import TextureTrainConfig, train_texture

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    return _report(train_texture(TextureTrainConfig(**_kwargs(args))))
