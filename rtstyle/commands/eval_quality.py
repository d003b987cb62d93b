"""``rtstyle eval quality``: a style network's objective against optimisation's (Johnson et al.
Fig. 5), a thin wrapper over ``rtstyle.quality.evaluate_quality``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .optimize import add_optimizer_arguments, optimizer_settings
from .output_flags import add_overwrite_flags
from .progress_args import add_progress_arguments, progress_mode


def milestone_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated iteration counts such as 50,100,300,500, got {text!r}") from None


def register(subparsers) -> None:
    p = subparsers.add_parser("quality", help="objective of a style network vs optimisation at 50..500 iterations",
                              description=__doc__)
    p.add_argument("--model", required=True, help="bundled style model name or checkpoint path")
    p.add_argument("--images", type=Path, nargs="+", required=True, help="image files and/or folders of images")
    p.add_argument("--style", type=Path, help="the style image the model was trained on "
                   "(default: looked up by name in --style-dir and checked against the checkpoint's sha256)")
    p.add_argument("--style-dir", type=Path, action="append", dest="style_dirs", metavar="DIR",
                   help="folder to look for the style image in (repeatable; default: ../shared/data/styles "
                        "if present, then the bundled samples)")
    p.add_argument("--iterations", type=milestone_list, default=(50, 100, 300, 500), metavar="N1,N2,...",
                   help="optimisation milestones; one run to the largest (default: 50,100,300,500)")
    p.add_argument("--stop-at-match", action="store_true",
                   help="stop each image's optimisation once it matches the network (at most the last milestone): "
                        "the match iteration at a fraction of the cost; later milestones are not reported")
    p.add_argument("--size", type=int, default=256, help="longer side of each image in px (default: 256)")
    p.add_argument("--limit", type=int, help="use at most this many images")
    add_optimizer_arguments(p, init="noise")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--vgg-weights", type=Path, help="VGG16 weights (.pth from torchvision or .safetensors)")
    p.add_argument("--timing-runs", type=int, default=5, help="network timing: median of N runs after warm-up (default: 5)")
    p.add_argument("--json", type=Path, dest="json_path", metavar="PATH", help="write the full report here")
    p.add_argument("--plot", type=Path, dest="plot_path", metavar="PNG",
                   help="loss-vs-iteration plot (default: the --json path with .png)")
    add_progress_arguments(p)
    add_overwrite_flags(p, "existing --json / --plot files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..quality import QualityConfig, evaluate_quality, markdown_table

    config = QualityConfig(
        model=args.model, images=args.images, style=args.style, style_dirs=args.style_dirs,
        milestones=args.iterations, size=args.size, limit=args.limit, settings=optimizer_settings(args),
        timing_runs=args.timing_runs, stop_at_match=args.stop_at_match, device=args.device,
        vgg_weights=args.vgg_weights, json_path=args.json_path, plot_path=args.plot_path,
        progress=progress_mode(args),
        overwrite=args.overwrite,
    )
    report = evaluate_quality(config)
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(markdown_table(report))
    avg = report["average"]["match"]
    median = avg["median_per_image"]
    last = report["milestones"][-1]
    print(f"\nper image, optimisation matches the network after a median of "
          f"{median if median is not None else f'more than {last}'} iterations")
    if avg["iteration"] is not None:
        print(f"\noptimisation matches the network's objective after {avg['iteration']} iterations "
              f"({avg['seconds']:.1f} s, {avg['speed_ratio']:.0f}x the network's time) on {report['device']}")
    else:
        print(f"\noptimisation did not reach the network's objective within {report['milestones'][-1]} iterations")
    for key in ("json", "plot"):
        if key in report:
            print(f"{key}: {report[key]}")
    return 0
