"""``rtstyle eval temporal``: flicker of a stylized video (warping error, Lai et al. 2018) with the
style and content loss on the same frames, so steadiness is never bought by losing the style."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..choices import TEMPORAL_CUT_THRESHOLD as CUT_THRESHOLD
from .output_flags import add_overwrite_flags
from .progress_args import add_progress_arguments, progress_mode
from .stylize import add_engine_arguments, add_smoothing_argument, time_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("temporal", help="warping error (flicker) of a model on a video, with style/content loss",
                       description=__doc__)
    p.add_argument("video", type=Path, help="input video")
    p.add_argument("--model", required=True, help="style model (bundled name or checkpoint / .onnx / engine)")
    add_engine_arguments(p)
    p.add_argument("--batch-size", type=int, default=4, help="frames per engine call (default: 4)")
    p.add_argument("--start", type=time_arg, metavar="SECONDS", help="start time in the input")
    p.add_argument("--duration", type=time_arg, metavar="SECONDS", help="length to evaluate")
    add_smoothing_argument(p)
    p.add_argument("--flow", default="dis", choices=("dis", "farneback"), help="optical flow on the input (default: dis)")
    p.add_argument("--cut-threshold", type=float, default=CUT_THRESHOLD, metavar="E",
                   help="skip a frame pair as a scene cut when the input's own warping error (squared) exceeds E, "
                        f"or under 10%% of its pixels can be followed (default: {CUT_THRESHOLD})")
    p.add_argument("--encoded", action="store_true",
                   help="also measure the output as stylize encodes it (its default encoder, a temporary file)")
    p.add_argument("--style", type=Path, help="the model's style image (default: found by name in --style-dir)")
    p.add_argument("--style-dir", type=Path, help="folder holding the model's style image "
                   "(default: ../shared/data/styles beside the repo, else the bundled samples)")
    p.add_argument("--no-losses", dest="losses", action="store_false", help="skip the style/content loss (faster)")
    p.add_argument("--loss-every", type=int, default=1, metavar="N", help="style/content loss on every N-th frame (default 1)")
    p.add_argument("--json", type=Path, dest="json_path", help="write the report as JSON")
    p.add_argument("--plot", type=Path, dest="plot_path", help="write per-pair warping error over time (PNG)")
    add_progress_arguments(p)
    add_overwrite_flags(p, "existing --json / --plot files")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..eval_temporal import TemporalEvalConfig, evaluate_temporal, format_table
    from ..limits import check_media_pixels

    check_media_pixels(args.video, args.max_pixels)  # from the header, before a frame is decoded
    config = TemporalEvalConfig(
        video=args.video, model=args.model, style=args.style, style_dir=args.style_dir, start=args.start,
        duration=args.duration, max_side=args.max_side, backend=args.backend, device=args.device,
        precision=args.precision, batch_size=args.batch_size, smoothing=args.temporal_smoothing, flow=args.flow,
        cut_threshold=args.cut_threshold, encoded=args.encoded,
        losses=args.losses, loss_every=args.loss_every, json_path=args.json_path, plot_path=args.plot_path, progress=progress_mode(args),
        overwrite=args.overwrite, trust_model=args.trust_model,
    )
    report = evaluate_temporal(config)
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(format_table([report]))
    cuts = report["skipped_pairs"]
    times = ", ".join(f"{t:.2f}" for t in report["skipped_times"])
    print(f"{report['pairs']} frame pairs at {report['size'][0]}x{report['size'][1]}"
          + (f" ({cuts} more skipped as scene cuts, at {times} s)" if cuts else "")
          + f", {report['valid_fraction']:.0%} of pixels valid; engine {report['engine_ms_per_frame']:.1f} ms/frame"
          + (f", smoothing {report['smoothing_ms_per_frame']:.1f} ms/frame" if report["smoothing"] else ""))
    if report["encoded"]:
        e = report["encoded"]
        print(f"encoded: {e['codec']} preset {e['preset']} crf {e['crf']:g} ({e['pix_fmt']}), as stylize writes it")
    for label, path in (("json", args.json_path), ("plot", args.plot_path)):
        if path is not None:
            print(f"{label}: {path}")
    return 0
