"""``rtstyle optimize``: stylize one image by optimisation (Gatys et al.), a thin wrapper over
``rtstyle.optimize.optimize_image``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..choices import INITS, OPTIMIZERS, LossConfig
from .output_flags import add_overwrite_flags
from .progress_args import add_progress_arguments, progress_mode


def layer_list(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 1,1,0.5,0.5, got {text!r}") from None


def add_optimizer_arguments(p: argparse.ArgumentParser, *, init: str) -> None:
    """Flags of ``OptimizerSettings``, shared with ``rtstyle eval quality``."""
    p.add_argument("--optimizer", default="lbfgs", choices=OPTIMIZERS, help="default: lbfgs")
    p.add_argument("--lr", type=float, help="step size (default: 1.0 for lbfgs, 0.02 for adam on [0,1] pixels)")
    p.add_argument("--init", default=init, choices=INITS, help=f"starting image (default: {init})")
    p.add_argument("--noise-ratio", type=float, default=0.6, help="--init mix: share of white noise (default: 0.6)")
    p.add_argument("--seed", type=int, default=4, help="seed of the noise (default: 4)")


def optimizer_settings(args: argparse.Namespace):
    from ..optimize import OptimizerSettings

    return OptimizerSettings(optimizer=args.optimizer, lr=args.lr, init=args.init, noise_ratio=args.noise_ratio,
                             seed=args.seed)


def register(subparsers) -> None:
    d = LossConfig()
    p = subparsers.add_parser("optimize", help="stylize one image by optimisation (Gatys et al.; slow, a quality reference)",
                              description=__doc__)
    p.add_argument("content", type=Path, help="content image")
    p.add_argument("--style", type=Path, required=True, help="style image")
    p.add_argument("-o", "--output", type=Path, required=True, help="output image (.png, .jpg, ...)")
    p.add_argument("--iterations", type=int, default=300, help="optimiser steps (default: 300)")
    add_optimizer_arguments(p, init="content")
    p.add_argument("--content-weight", type=float, default=d.content_weight)
    p.add_argument("--style-weight", type=float, default=d.style_weight)
    p.add_argument("--tv-weight", type=float, default=d.tv_weight)
    p.add_argument("--content-layers", type=layer_list, default=d.content_layers, metavar="L1,L2",
                   help=f"VGG16 layers (default: {','.join(d.content_layers)})")
    p.add_argument("--style-layers", type=layer_list, default=d.style_layers, metavar="L1,L2,...",
                   help=f"VGG16 layers (default: {','.join(d.style_layers)})")
    p.add_argument("--style-layer-weights", type=float_list, metavar="W1,W2,...",
                   help="one weight per style layer (default: all 1)")
    p.add_argument("--size", type=int, default=512, help="longer side of the content image in px (default: 512)")
    p.add_argument("--style-size", type=int, default=512, help="longer side of the style image in px (default: 512)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--vgg-weights", type=Path, help="VGG16 weights (.pth from torchvision or .safetensors)")
    p.add_argument("--save-every", type=int, metavar="N", help="also save OUT_<iteration>.png every N iterations")
    add_overwrite_flags(p)
    add_progress_arguments(p)
    p.set_defaults(func=run)


def loss_config(args: argparse.Namespace) -> LossConfig:
    from ..errors import InputError

    try:
        return LossConfig(content_layers=args.content_layers, style_layers=args.style_layers,
                          style_layer_weights=args.style_layer_weights, content_weight=args.content_weight,
                          style_weight=args.style_weight, tv_weight=args.tv_weight)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    import threading

    from ..optimize import OptimizeConfig, optimize_image
    from ..signals import interrupt_on_signals

    config = OptimizeConfig(
        content=args.content, style=args.style, output=args.output, iterations=args.iterations,
        settings=optimizer_settings(args), loss=loss_config(args), size=args.size, style_size=args.style_size,
        device=args.device, vgg_weights=args.vgg_weights, save_every=args.save_every, overwrite=args.overwrite,
        progress=progress_mode(args),
    )
    with interrupt_on_signals(threading.Event()) as stop:  # SIGINT/SIGTERM/SIGHUP: the image so far is written
        result = optimize_image(config, stop)
    first, last = result.history[0], result.history[-1]
    terms = ", ".join(f"{k} {v:.4g}" for k, v in last.items())
    print(f"{result.output}: {result.iterations} iterations in {result.seconds:.1f} s; "
          f"objective {first['total']:.4g} -> {last['total']:.4g} ({terms})")
    if result.intermediates:
        print(f"intermediate images: {len(result.intermediates)} ({result.intermediates[0].name} ...)")
    return 0
