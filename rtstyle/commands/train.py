"""``rtstyle train style|sr|adain|stylebank|texture``: thin CLI over the ``trainers`` package.

Every default comes from the trainer's config dataclass (``rtstyle.trainconfig``, torch-free),
so a default is written once and ``--help`` shows it."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from rtstyle.choices import PROGRESS_MODES
from rtstyle.presets import PRESETS, apply_preset, describe
from rtstyle.trainconfig import (
    AMP_MODES,
    COMPILE_AUTO_MIN_STEPS,
    COMPILE_MODES,
    SR_ARCHS,
    SR_SCALES,
    STYLE_ARCHS,
    AdaINTrainConfig,
    SRTrainConfig,
    StyleBankTrainConfig,
    StyleTrainConfig,
    TextureTrainConfig,
)

from .optimize import layer_list  # "relu2_2,relu3_3" -> names; LossConfig checks them
from .output_flags import add_overwrite_flags


class _Flags:
    """``add(flag, field, ...)`` adds ``--flag`` with the config dataclass field's default."""

    def __init__(self, parser: argparse.ArgumentParser, config: type):
        self.parser = parser
        self.defaults = {f.name: f.default for f in dataclasses.fields(config)
                         if f.default is not dataclasses.MISSING}

    def add(self, *flags: str, field: str | None = None, **kwargs) -> None:
        name = field or flags[0].lstrip("-").replace("-", "_")
        if name in self.defaults and "default" not in kwargs and kwargs.get("action") != "store_false":
            kwargs["default"] = self.defaults[name]
        if field:
            kwargs["dest"] = field
        self.parser.add_argument(*flags, **kwargs)


def _common(flags: _Flags, *, data_help: str | None = None) -> None:
    flags.add("--data", type=Path, required=data_help is None,
              help=data_help or "folder tree of training images (jpg/png/webp)")
    flags.add("--out", "-o", type=Path, required=True, help="checkpoint to write (.safetensors)")
    # -n is the default made explicit here (training never replaces --out without -y); the config
    # takes only its own fields, so never_overwrite stays on the command line.
    add_overwrite_flags(flags.parser, "an existing --out checkpoint (and its .losses.csv/.png)")
    flags.add("--iterations", type=int, help="optimiser steps")
    flags.add("--batch-size", type=int, help="images per step (per process under torchrun)")
    flags.add("--image-size", type=int, help="training crop side in pixels")
    flags.add("--lr", type=float, help="Adam learning rate")
    flags.add("--device", help="auto, cpu, cuda or cuda:N")
    flags.add("--seed", type=int, help="seeds the crops, the initialisation and every step's randomness")
    flags.add("--resume", type=Path, help="continue from this training checkpoint")
    flags.add("--checkpoint-every", type=int, help="save the checkpoint every N steps")
    flags.add("--log-every", type=int, help="write the losses to the CSV every N steps")
    flags.add("--workers", field="num_workers", type=int, help="data-loader processes (default 0 on CPU, 4 on CUDA)")
    flags.add("--amp", help=f"autocast: {', '.join(AMP_MODES)} (auto: bf16 or fp16 on CUDA, bf16 on CPUs with "
                            "native bf16 (AMX, AVX512-BF16), off on other CPUs)")
    flags.add("--max-cpu-seconds", type=float,
              help="stop (with a final checkpoint) once training has used this much CPU time, resumes included: "
                   "a budget that other processes' load does not shrink")
    flags.add("--compile", help=f"torch.compile the network and the loss: {', '.join(COMPILE_MODES)} (auto: on for "
                                f"CPU runs of {COMPILE_AUTO_MIN_STEPS}+ steps; about a minute to compile)")
    flags.add("--vgg-weights", type=Path, help="VGG16 weights (.pth from torchvision or .safetensors)")
    flags.add("--name", help="model name stored in the checkpoint (default: the file name)")
    flags.add("--progress", choices=PROGRESS_MODES, metavar="{" + ",".join(PROGRESS_MODES) + "}",
              help="auto: a bar on a terminal, plain lines every few seconds in a log or pipe; json: the same as "
                   "JSON lines; none: nothing; auto follows $RTSTYLE_PROGRESS when set")
    flags.add("-q", "--quiet", field="progress", action="store_const", const="none", help="no progress output")
    flags.add("--no-progress", field="progress", action="store_false", help="no progress output (as -q)")


def _weights(flags: _Flags, *names: str) -> None:
    for name in names:
        flags.add(f"--{name}-weight", type=float, help=f"weight of the {name} loss term")


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a style or super-resolution network")
    tsub = train.add_subparsers(dest="task", metavar="TASK", required=True)

    style = tsub.add_parser("style", help="train a style transformer for one style image")
    flags = _Flags(style, StyleTrainConfig)
    flags.add("--style", type=Path, required=True, help="style image")
    _common(flags)
    flags.add("--style-size", type=int, help="longer side of the style image (px)")
    flags.add("--arch", help=f"{' or '.join(STYLE_ARCHS)}: johnson is 32 wide with 5 residual blocks, fast 16 and 3")
    flags.add("--width", type=int, help="channels after the first conv (default: the --arch preset's)")
    flags.add("--num-residual", type=int, help="residual blocks (default: the --arch preset's)")
    _weights(flags, "content", "style", "tv")
    stab = _Flags(style.add_argument_group("stabilisation (less flicker on video; see `rtstyle eval temporal`)"),
                  StyleTrainConfig)
    stab.add("--stability-weight", type=float,
             help="weight of ||f(T(x)) - T(f(x))||^2 for small random motions T (synthetic motion: see the flags below; "
                  "held-out figures in the README; 0 turns it off)")
    stab.add("--stability-shift", type=float, metavar="PX", help="max random sub-pixel translation of T, in pixels")
    stab.add("--stability-noise", type=float, metavar="STD",
             help="std of the Gaussian noise added to the perturbed input, [0,1] units")
    stab.add("--stability-brightness", type=float, metavar="DELTA",
             help="max brightness offset of the perturbed input, [0,1] units")
    stab.add("--stability-rotate", type=float, metavar="DEG", help="max rotation of T, degrees (synthetic motion)")
    stab.add("--stability-zoom", type=float, metavar="FRACTION",
             help="max relative scale change of T, e.g. 0.05 for x0.95..x1.05 (synthetic motion)")
    stab.add("--stability-flow", type=float, metavar="PX",
             help="amplitude of T's smooth random local flow, pixels (synthetic motion)")
    stab.add("--stability-occlusion", type=float, metavar="P",
             help="chance of an occluding patch in the moved input; the loss skips it and its surround")
    style.add_argument("--preset", choices=list(PRESETS),
                       help="a whole recipe; options given on the command line still win. "
                            + "; ".join(describe(name) for name in PRESETS)
                            + " (the bundled models' recipe). Without it: the defaults shown here")
    style.set_defaults(func=_with_preset(StyleTrainConfig, _run(StyleTrainConfig, "train_style")))

    sr = tsub.add_parser("sr", help="train an x4 / x8 super-resolution network")
    flags = _Flags(sr, SRTrainConfig)
    flags.add("--scale", type=int, help=f"upscaling factor: {' or '.join(map(str, SR_SCALES))}")
    flags.add("--arch", help=f"{' or '.join(SR_ARCHS)}: the paper's net (the whole image from the net) "
              "or a correction on top of bicubic upsampling")
    _common(flags)
    flags.add("--width", type=int, help="channels of the residual blocks")
    flags.add("--num-residual", type=int, help="residual blocks")
    flags.add("--norm", help="normalisation in the residual blocks: batch or none")
    flags.add("--blur-sigma", type=float, help="Gaussian blur before the bicubic downsampling of the LR input")
    _weights(flags, "content", "pixel", "tv")
    flags.add("--content-layers", type=layer_list, metavar="LAYERS",
              help="VGG16 layers of the feature loss, comma-separated, e.g. relu2_2,relu3_3 (the paper: relu2_2)")
    flags.add("--colour-weight", type=float,
              help="MSE between the output degraded like the input (blur + bicubic down) and the input")
    sr.set_defaults(func=_run(SRTrainConfig, "train_sr"))

    adain = tsub.add_parser("adain", help="train an AdaIN decoder: any style image at inference (Huang & Belongie 2017)")
    flags = _Flags(adain, AdaINTrainConfig)
    flags.add("--styles", type=Path, required=True, help="folder of style images (paintings) to train on")
    flags.add("--hold-out", action="append", default=[], metavar="NAME",
              help="style file name in --styles to leave out of training (repeatable), to judge generalisation")
    _common(flags)
    flags.add("--style-size", type=int, help="longer side the style images are loaded at (px)")
    flags.add("--width", type=int, help="decoder channels at the relu1 level (paper: 64)")
    _weights(flags, "content", "style")
    adain.set_defaults(func=_run(AdaINTrainConfig, "train_adain"))

    bank = tsub.add_parser("stylebank", help="train a StyleBank: several styles in one network (Chen et al. 2017)")
    flags = _Flags(bank, StyleBankTrainConfig)
    flags.add("--style", field="styles", type=Path, action="append", required=True,
              help="style image; repeat it, one filter bank per style, in this order")
    flags.add("--base", type=Path, help="trained StyleBank to add the styles to (only the new banks train)")
    _common(flags)
    flags.add("--style-size", type=int, help="longer side of the style images (px)")
    flags.add("--width", type=int, help="encoder channels after the first conv")
    flags.add("--bank-layers", type=int, help="3x3 convs per style bank")
    flags.add("--autoencoder-every", type=int, metavar="T",
              help="one auto-encoder step after every T stylization steps (the paper's T+1)")
    _weights(flags, "content", "style", "tv")
    bank.set_defaults(func=_run(StyleBankTrainConfig, "train_stylebank"))

    texture = tsub.add_parser("texture", help="train a multi-scale texture network for one style (Ulyanov et al. 2016)")
    flags = _Flags(texture, TextureTrainConfig)
    flags.add("--style", type=Path, required=True, help="style image")
    flags.add("--synthesis", action="store_true",
              help="noise in, texture out (sample it with `rtstyle synth`); needs no --data")
    _common(flags, data_help="folder tree of training images (needed unless --synthesis)")
    flags.add("--style-size", type=int, help="longer side of the style image (px)")
    flags.add("--scales", type=int, help="resolutions the generator sees (1..6)")
    flags.add("--width", type=int, help="channels per scale")
    flags.add("--noise-channels", type=int, help="noise maps per scale (default 3; 8 with --synthesis)")
    flags.add("--noise-std", type=float, help="training-time noise (zero at inference)")
    flags.add("--padding", help="convolution padding: circular (the paper's) or reflect")
    flags.add("--upsample", help="--synthesis: bilinear (no block edges) or nearest (the paper's)")
    _weights(flags, "content", "style", "tv")
    texture.set_defaults(func=_run(TextureTrainConfig, "train_texture"))


def _report(result) -> int:
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun: every process trained, rank 0 wrote the files and speaks for all
    losses = ", ".join(f"{k} {v:.4g}" for k, v in result.last_losses.items())
    print(f"checkpoint: {result.checkpoint} ({result.steps} iterations, {result.seconds:.0f} s)")
    print(f"losses:     {losses}")
    print(f"log:        {result.csv}" + (f", plot {result.plot}" if result.plot else ""))
    if result.skipped_images:
        print(f"skipped {result.skipped_images} unreadable image(s)")
    return 0


def _with_preset(config: type, run):
    """``--preset NAME``: the preset's recipe for every option left at its default (rtstyle.presets)."""

    def run_preset(args: argparse.Namespace) -> int:
        if getattr(args, "preset", None) is not None:
            defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
            args = argparse.Namespace(**apply_preset(args.preset, vars(args), defaults))
        return run(args)

    return run_preset


def _run(config: type, trainer: str):
    """The handler: build ``config`` from the flags (it checks itself), then call ``trainers.<trainer>``."""

    def run(args: argparse.Namespace) -> int:
        import rtstyle.trainers as trainers

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
        # The config's own fields only: the CLI keeps its bookkeeping (handler, parser) in args too.
        names = {f.name for f in dataclasses.fields(config)}
        kwargs = {k: v for k, v in vars(args).items() if k in names}
        return _report(getattr(trainers, trainer)(config(**kwargs)))

    return run
