"""``rtstyle demo``: stylize the bundled sample clip with a bundled style (the README's first command)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..choices import DEFAULT_STYLE_MODEL
from ..models import BUNDLED_DIR
from .output_flags import add_overwrite_flags

SAMPLE_CLIP = BUNDLED_DIR.parent / "assets" / "samples" / "cup.mp4"
DEFAULT_STYLE = DEFAULT_STYLE_MODEL


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="stylize the bundled sample clip with a bundled style")
    p.add_argument("--model", default=DEFAULT_STYLE, help=f"bundled style or checkpoint (default: {DEFAULT_STYLE})")
    p.add_argument("-o", "--output-dir", type=Path, default=Path("rtstyle-demo"), help="where to write (default: rtstyle-demo, in the current folder)")
    p.add_argument("--no-progress", action="store_true")
    add_overwrite_flags(p, "the demo's earlier output")
    p.set_defaults(func=_run)


def run_demo(model: str = DEFAULT_STYLE, output_dir: Path = Path("rtstyle-demo"), progress: bool = True,
             overwrite: bool = False):
    """Stylize the sample clip into ``output_dir``; an earlier output is replaced only with
    ``overwrite`` (-y), like every other output (rtstyle.outputs)."""
    from ..stylize import StylizeConfig, stylize_video

    output = Path(output_dir) / f"{SAMPLE_CLIP.stem}_{Path(model).stem}.mp4"
    config = StylizeConfig(inputs=(SAMPLE_CLIP,), model=model, output=output, overwrite=overwrite, progress=progress)
    return stylize_video(config)


def _run(args: argparse.Namespace) -> int:
    result = run_demo(args.model, args.output_dir, progress=not args.no_progress, overwrite=args.overwrite)
    print(f"engine: {result.engine}", file=sys.stderr)
    print(f"stylized {result.frames_out} frames at {result.stats.fps:.1f} fps -> {result.output.resolve()}")
    return 0
