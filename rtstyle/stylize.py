"""Stylize video files: the library behind ``rtstyle stylize``.

Each file runs through the one frame path: ``sources.FileSource`` (resized to the model input by
``sources.Resized``) -> ``pipeline.run_pipeline`` -> ``sinks.build_sinks`` (smoothing, writer,
preview). ``rtstyle live --every-frame`` on the same file builds the same path and gives the same
frames.

* ``stylize_files(config) -> list[StylizeResult]``: every input (files or folders) into its output,
  one engine opened once. ``stylize_video(config)`` is the single-input form.
* ``plan_outputs(config)``: the (input, output) pairs, checked before any work starts (missing
  inputs, output equal to input, existing outputs without ``overwrite``, unwritable folders);
  every bad input is named in one error. ``plan_batch(config)`` returns the ``BatchPlan`` (good
  pairs, bad inputs with their reason, inputs skipped by -n) for callers that check more.
* ``stylize_batch(config, engine, stop, plan, on_done, on_failed) -> BatchReport``: with
  ``keep_going``, a failed input is recorded and the rest still run; ``on_done`` hears of each
  finished file as it completes (the CLI lists it then).
* ``ChainEngine(first, second)``: two engines as one (style then super-resolution).
* ``interrupt_on_signals(stop)`` (``rtstyle.signals``): SIGINT/SIGTERM/SIGHUP set ``stop`` for the duration of a ``with``
  block, for top-level callers (the CLI); the pipeline then finalises a playable partial output
  and ``stylize_files`` raises ``Interrupted``.

Photos (``photos.is_photo``: jpg/png/webp/bmp/tiff of one frame) take the same engine path,
batched, through ``photos.stylize_photos`` and are written in the format of their output's
extension; folders may mix photos and videos. GIFs, animated PNGs and animated WebPs are videos;
a video's output holds every frame (``-o x.gif``, ``x.png`` (APNG), ``x.webp``: animations) or is
refused (``-o x.jpg``).

Output naming: one input and an output with a suffix -> that file; otherwise outputs go to the
output folder (default: beside each input) as ``<stem><suffix>.<ext>``: the suffix defaults to
``_<model>[_<sr>]``, the extension to .mp4 for videos (an animation keeps its own) and the photo's own
(.png for bmp/tiff). Output size: the model's output size, or ``keep_size`` (the input's),
``out_scale`` (times the input's), ``out_width``/``out_height`` (one alone keeps the aspect ratio).

``strength`` < 1 blends the style engine's output with its input (``rtstyle.strength``); ``tile``
cuts frames into overlapping tiles for the engine and stitches them back (``rtstyle.tiles``:
``rtstyle upscale --tile``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .batch import BatchPlan, BatchReport, one_line
from .choices import DEFAULT_STYLE_MODEL
from .conditioning import StyleChoice
from .engine import Engine, EngineOptions, open_engine
from .errors import CheckpointError, InputError, Interrupted, OutputError, RtstyleError
from .frames import IMAGE_EXTENSIONS, fit_size
from .fsutil import as_paths, atomic_path
from .gpu.decode import DeviceVideoReader, device_file_source
from .limits import Limits, check_media_pixels
from .outputs import OutputPolicy
from .photos import PHOTO_OUTPUT_EXTENSIONS, check_photo, is_photo, stylize_photos, tile_count
from .pipeline import PipelineConfig, PipelineStats, run_pipeline
from .progress import progress as progress_bar
from .signals import interrupt_on_signals  # noqa: F401 - part of this module's API
from .sinks import Display, PreviewSink, WriterSink, build_sinks
from .sources import FileSource, Resized
from .strength import check_strength, with_strength
from .temporal import check_smoothing
from .threads import plan_threads
from .tiles import DEFAULT_PAD, Tiling, check_tiling
from .video import VIDEO_EXTENSIONS, AudioSource, EncoderConfig, VideoInfo, VideoReader, VideoWriter
from .video.tag import RunTag
from .video.writer import check_video_extension


@dataclass(frozen=True)
class StylizeConfig:
    inputs: tuple[Path, ...]  # video files and/or folders of videos (one str or Path is one input)
    model: str | Path | None = DEFAULT_STYLE_MODEL  # bundled name or checkpoint/.onnx/engine path
    output: Path | None = None  # a file (single input) or a folder
    sr_model: str | Path | None = None  # run after the style model, in the same pass
    backend: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 4
    resize: tuple[int, int] | None = None  # model input (width, height)
    max_side: int | None = None  # shrink the model input so its longer side is at most this
    start: float | None = None  # seconds
    duration: float | None = None  # seconds
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: str = "auto"  # auto | pyav | opencv | pyav-cuda (frames decoded into the engine's GPU: gpu.decode)
    overwrite: bool = False
    never_overwrite: bool = False  # -n: skip inputs whose output exists (never replace, never fail on it)
    preview: bool = False
    progress: bool | str = True  # or a mode of rtstyle.progress: auto, bar, plain, json, none
    stats_path: Path | None = None
    temporal_smoothing: float = 0.0  # flow-guided blend with the previous output (sinks.SmoothingSink); 0 = off
    style: StyleChoice = field(default_factory=StyleChoice)  # multi-style models: AdaIN image/alpha, StyleBank index
    # Output size (default: the model's output size); at most one of keep_size / out_scale / out_width+out_height.
    keep_size: bool = False  # back to the input's size (after max_side / resize shrank the model input)
    out_scale: float | None = None  # the input's size times this
    out_width: int | None = None  # one of width/height alone keeps the aspect ratio
    out_height: int | None = None
    trust_model: bool = False  # load a .pt2 / TensorRT engine rtstyle did not produce (rtstyle.trust)
    suffix: str | None = None  # folder outputs: <stem><suffix>.<ext> (default _<model>[_<sr>])
    keep_going: bool = False  # many inputs: skip bad ones and go on after a failed one (summary at the end)
    limits: Limits = field(default_factory=Limits)  # frame size, frames and length of one input (rtstyle.limits)
    strength: float = 1.0  # the style model's output blended with its input (rtstyle.strength); 1: full style
    tile: int | None = None  # cut frames into tiles of this many pixels for the engine (rtstyle.tiles); None: whole
    tile_pad: int = DEFAULT_PAD  # pixels of context around each tile
    run_id: str | None = None  # written into each video output's run tag (video.tag); None: a new id per output

    def __post_init__(self) -> None:
        # One path (str or Path) is one input, not a sequence of one-letter file names.
        object.__setattr__(self, "inputs", as_paths(self.inputs))
        object.__setattr__(self, "strength", check_strength(self.strength))
        check_tiling(self.tile, self.tile_pad)
        check_smoothing(self.temporal_smoothing)
        if not self.inputs:
            raise InputError("no input given; pass one or more video files or folders")
        if self.resize is not None and (len(self.resize) != 2 or min(self.resize) < 1):
            raise InputError(f"--resize must be WIDTHxHEIGHT with positive sides, got {self.resize}")
        if self.max_side is not None and self.max_side < 1:
            raise InputError(f"--max-side must be >= 1, got {self.max_side}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.resize is not None and self.max_side is not None:
            raise InputError("give either --resize or --max-side, not both")
        self.output_policy()  # -y with -n is refused there, as for every command
        for name, flag in (("start", "-ss/--start"), ("duration", "-t/--duration")):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise InputError(f"{flag} must be a finite number of seconds >= 0, got {value}")
        sizes = [n for n, on in (("--keep-size", self.keep_size), ("--scale", self.out_scale is not None),
                                 ("--width/--height", self.out_width is not None or self.out_height is not None)) if on]
        if len(sizes) > 1:
            raise InputError(f"give one way to size the output, not {' and '.join(sizes)}")
        if self.out_scale is not None and not (math.isfinite(self.out_scale) and self.out_scale > 0):
            raise InputError(f"--scale must be a number > 0, got {self.out_scale}")
        for name in ("out_width", "out_height"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"--{name.removeprefix('out_')} must be >= 1 pixel, got {getattr(self, name)}")
        if self.suffix is not None and ("/" in self.suffix or "\\" in self.suffix):
            raise InputError(f"--suffix is added to file names and cannot hold a folder separator, got {self.suffix!r}")
        if self.decoder == "pyav-cuda" and self.temporal_smoothing > 0:
            raise InputError("--decoder pyav-cuda keeps frames on the GPU, but --temporal-smoothing computes optical "
                             "flow from them on the CPU; use --decoder auto with smoothing")

    def output_policy(self) -> OutputPolicy:
        """The one output rule with this run's -y / -n (rtstyle.outputs)."""
        return OutputPolicy(overwrite=self.overwrite, never=self.never_overwrite)

    def engine_options(self) -> EngineOptions:
        """Options of the style engine (the SR engine takes no style choice)."""
        return EngineOptions(device=self.device, precision=self.precision, batch_size=self.batch_size, style=self.style,
                             trust_model=self.trust_model)


@dataclass
class StylizeResult:
    input: Path
    output: Path | None  # None if nothing was written
    frames_in: int
    frames_out: int
    stats: PipelineStats
    engine: str
    warnings: list[str] = field(default_factory=list)
    kind: str = "video"  # or "photo" (stats then cover the whole batch of photos)

    def to_dict(self) -> dict:
        return {"input": str(self.input), "output": str(self.output) if self.output else None, "kind": self.kind,
                "frames_in": self.frames_in, "frames_out": self.frames_out, "engine": self.engine,
                "warnings": self.warnings, **self.stats.to_dict()}


# ------------------------------------------------------------------------------------ engines

class ChainEngine(Engine):
    """``second(first(frames))``: e.g. a style net then an SR net. Frames move between devices
    only if the two engines live on different ones."""

    backend = "chain"

    def __init__(self, first: Engine, second: Engine):
        super().__init__(device=first.device, precision=first.precision, scale=first.scale * second.scale,
                         reason=first.reason)
        self.first, self.second = first, second

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        mid = self.first(frames)
        return self.second(mid.to(self.second.device, non_blocking=True))

    def describe(self) -> str:
        return f"{self.first.describe()} -> {self.second.describe()}"


def open_chain(config: StylizeConfig, on_status: Callable[[str], None] | None = None) -> Engine:
    """The style engine (at ``config.strength``), followed by the SR engine when ``config.sr_model``
    is set. ``on_status(line)`` hears what a slow first opening is doing (``engine.open_engine``)."""
    if config.model is None:
        raise InputError("no model given; pass --model NAME_OR_PATH (see `rtstyle models`)")
    opts = config.engine_options()
    engine = with_strength(open_engine(config.model, config.backend, opts, on_status), config.strength)
    if config.sr_model is not None:
        sr = open_engine(config.sr_model, config.backend, dataclasses.replace(opts, style=StyleChoice()), on_status)
        if sr.scale == 1:
            raise CheckpointError(f"--sr {config.sr_model} is a style model (it does not upscale); --sr needs a "
                                  f"super-resolution model, e.g. one from `rtstyle train sr` (style models go in --model)")
        engine = ChainEngine(engine, sr)
    return engine


# ------------------------------------------------------------------------------------ outputs

def model_label(config: StylizeConfig) -> str:
    names = [m for m in (config.model, config.sr_model) if m is not None]
    return "_".join(Path(str(m)).stem for m in names) or "stylized"


def expand_inputs(inputs: str | Path | tuple[Path, ...],
                  bad: list[tuple[Path, RtstyleError]] | None = None) -> list[Path]:
    """Files named directly, plus the videos and photos in named folders (sorted, not recursive).
    Missing inputs raise, or are appended to ``bad`` when it is given (so all can be named at once)."""
    files: list[Path] = []
    for item in as_paths(inputs):
        problem = None
        if item.is_dir():
            found = sorted(p for p in item.iterdir()
                           if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS + IMAGE_EXTENSIONS)
            if not found:
                problem = (f"no videos or photos in folder {item} (looked for "
                           f"{', '.join(VIDEO_EXTENSIONS + IMAGE_EXTENSIONS)})")
            files.extend(found)
        elif item.exists():
            files.append(item)
        else:
            problem = f"input not found: {item}"
        if problem is not None:
            if bad is None:
                raise InputError(problem)
            bad.append((item, InputError(problem)))
    return files


def plan_outputs(config: StylizeConfig) -> list[tuple[Path, Path]]:
    """(input, output) pairs; raises before any work if an input or output is unusable (naming
    every bad one), unless ``keep_going`` (then only the good pairs)."""
    plan = plan_batch(config)
    plan.raise_if_bad(config.keep_going)
    return plan.pairs


def plan_batch(config: StylizeConfig) -> BatchPlan:
    """Check every input and output before any work; every problem is collected, none stops the
    check. Callers then ``raise_if_bad`` (naming all of them) or go on with the good ones."""
    bad: list[tuple[Path, RtstyleError]] = []
    files = expand_inputs(config.inputs, bad)
    if not files:
        BatchPlan([], bad).raise_if_bad(keep_going=False)  # nothing to go on with, even with keep_going
    plan = BatchPlan([], bad)
    seen: dict[Path, Path] = {}
    policy = config.output_policy()
    for src, dst in _pair_outputs(config, files):
        if policy.skip(dst):  # -n: existing outputs are skipped, never replaced
            plan.skipped.append((src, f"{dst} exists (-n)"))
            continue
        try:
            _check_kind(src, dst)
            _check_output(src, dst, policy)
        except OutputError as exc:
            plan.bad.append((src, exc))
            continue
        key = dst.resolve()
        if key in seen:
            raise OutputError(f"{seen[key]} and {src} would both write {dst}; give separate output folders")
        seen[key] = src
        plan.pairs.append((src, dst))
    if config.stats_path is not None:  # never one of the inputs or the videos this run writes
        policy.check(config.stats_path, [p for pair in plan.pairs for p in pair])
    return plan


def check_input(src: Path, config: StylizeConfig) -> VideoInfo | None:
    """Every check an input gets before an engine is built or a frame decoded, at every front
    door (the CLI, the studio's file jobs, the Python API): its frame size from the header
    (``config.limits``), then a readable photo, or a video whose container and codec decode
    (one frame, within the pixel limit), within the frame and length limits, whose window
    (``start``) is not past its end. ``VideoReader`` holds the same limits while decoding.
    Returns the video's ``VideoInfo`` (None for a photo)."""
    limits = config.limits
    check_media_pixels(src, limits.max_pixels, limits.hint)
    if is_photo(src):
        check_photo(src)
        return None
    decoder = config.decoder if config.decoder in ("pyav", "opencv") else "auto"
    info = VideoReader(src, decoder=decoder, limits=limits).info
    check_window(src, info, config.start)
    if config.start or config.duration:  # only the window is read; its frames are counted while decoding
        rest = info.duration - (config.start or 0) if info.duration is not None else None
        spans = [x for x in (rest, config.duration) if x is not None]
        limits.check_seconds(min(spans) if spans else None, src)
        return info
    limits.check_frames(info.num_frames, src)
    limits.check_seconds(info.duration, src)
    return info


def check_plan(plan: BatchPlan, config: StylizeConfig) -> BatchPlan:
    """``check_input`` on every planned input; a refused one moves to ``plan.bad`` with its reason."""
    for src, _ in list(plan.pairs):
        try:
            check_input(src, config)
        except RtstyleError as exc:
            plan.refuse(src, exc)
    return plan


def check_window(src: Path, info: VideoInfo, start: float | None) -> None:
    """Refuse a start at or past the end of a video whose length is known."""
    if start and info.duration is not None and start >= info.duration:
        raise InputError(f"-ss/--start {start:g} s is at or past the end of {src.name}, which is "
                         f"{info.duration:.2f} s long")


def _no_frames_message(src: Path, info: VideoInfo, start: float | None, duration: float | None) -> str:
    if not (start or duration):
        return f"no frames decoded from {src}"
    window = f"from {start or 0:g} s" + (f" for {duration:g} s" if duration else " on")
    length = f"it is {info.duration:.2f} s long" if info.duration else "its duration is unknown"
    return f"no frames decoded from {src} {window} ({length})"


def _pair_outputs(config: StylizeConfig, files: list[Path]) -> list[tuple[Path, Path]]:
    label = model_label(config)
    out = Path(config.output) if config.output is not None else None
    single_file = len(files) == 1 and not any(Path(p).is_dir() for p in config.inputs)
    if out is not None and single_file and not out.is_dir() and out.suffix:
        pairs = [(files[0], out)]
    else:
        if out is not None and out.suffix and not out.is_dir():
            raise OutputError(f"several inputs need an output folder, not the file {out}")
        suffix = f"_{label}" if config.suffix is None else config.suffix
        pairs = [(f, (out or f.parent) / f"{f.stem}{suffix}{default_extension(f)}") for f in files]
    return pairs


def default_extension(src: Path) -> str:
    """A photo keeps its format where it can be written (bmp/tiff become .png); an animation
    (GIF, APNG, animated WebP) stays one of its kind; other videos become .mp4."""
    ext = src.suffix.lower()
    if is_photo(src):
        return ext if ext in (".png", ".jpg", ".jpeg", ".webp") else ".png"
    return ext if ext in (".gif", ".png", ".webp") else ".mp4"


def _check_kind(src: Path, dst: Path) -> None:
    """A photo becomes a picture; a video (an animation too) becomes a file that holds every
    frame: a video, or an animated .gif/.png/.webp (``video.writer.check_video_extension``)."""
    if is_photo(src):
        if dst.suffix.lower() not in PHOTO_OUTPUT_EXTENSIONS:
            raise OutputError(f"{src.name} is a photo: give its output an image extension "
                              f"({', '.join(PHOTO_OUTPUT_EXTENSIONS)}), not {dst.name}")
        return
    try:
        check_video_extension(dst)
    except OutputError as exc:
        raise OutputError(f"{src.name} is a video; {exc}") from None


def output_size(config: StylizeConfig, original: tuple[int, int], produced: tuple[int, int],
                rotation: int = 0) -> tuple[int, int]:
    """The (width, height) written: ``produced`` (the engine's output) unless the config asks for
    the input's size (``keep_size``), a multiple of it (``out_scale``) or a width/height (one
    alone keeps the aspect ratio of ``original``). ``rotation``: a video shown turned by 90/270
    degrees is sized as shown."""
    w, h = original
    if config.keep_size:
        return w, h
    if config.out_scale is not None:
        return max(1, round(w * config.out_scale)), max(1, round(h * config.out_scale))
    want_w, want_h = config.out_width, config.out_height
    if want_w is None and want_h is None:
        return produced
    if rotation % 180 == 90:  # --width is the width the viewer sees
        want_w, want_h = want_h, want_w
    if want_w is None:
        want_w = max(1, round(w * want_h / h))
    if want_h is None:
        want_h = max(1, round(h * want_w / w))
    return want_w, want_h


def _check_output(src: Path, dst: Path, policy: OutputPolicy) -> None:
    policy.check(dst, [src])  # the one output rule (rtstyle.outputs)
    parent = dst.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK) or not _can_create_file_in(parent):
        raise OutputError(f"cannot write {dst}: folder {parent} is not writable")


def _can_create_file_in(folder: Path) -> bool:
    """Try it: os.access says yes to root on read-only file systems, and ACLs can say no."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".rtstyle-probe-"):
            return True
    except OSError:
        return False


# ----------------------------------------------------------------------------------- running

def stylize_video(config: StylizeConfig, engine: Engine | None = None,
                  stop: threading.Event | None = None) -> StylizeResult:
    """Stylize exactly one input video."""
    pairs = plan_outputs(config)
    if len(pairs) != 1:
        raise InputError(f"stylize_video takes one video, got {len(pairs)}; use stylize_files")
    return stylize_files(config, engine, stop)[0]


def stylize_files(config: StylizeConfig, engine: Engine | None = None,
                  stop: threading.Event | None = None) -> list[StylizeResult]:
    """Stylize every input; ``engine`` overrides ``config.model`` (tests, benchmarks)."""
    return stylize_batch(config, engine, stop).done


def stylize_batch(config: StylizeConfig, engine: Engine | None = None, stop: threading.Event | None = None,
                  plan: BatchPlan | None = None, on_done: Callable[[StylizeResult], None] | None = None,
                  on_failed: Callable[[Path, str], None] | None = None) -> BatchReport:
    """Stylize every planned input (``plan``, default ``plan_batch(config)`` with every input
    through ``check_input``: a caller's plan is taken as checked). Without ``config.keep_going``
    the first failure propagates; with it, a failed input is recorded (``on_failed``) and the
    rest still run. ``on_done`` hears of each finished file as it completes. An interrupt always
    stops the run."""
    plan = plan if plan is not None else check_plan(plan_batch(config), config)
    plan.raise_if_bad(config.keep_going)
    report = BatchReport(failed=[(src, one_line(error)) for src, error in plan.bad], skipped=list(plan.skipped))
    if not plan.pairs:
        if config.stats_path is not None and report.failed:
            write_stats(config.stats_path, report, config.overwrite)
        return report  # -n and every output exists, or every input bad (keep_going)
    engine = engine if engine is not None else open_chain(config)
    stop = stop or threading.Event()
    photos = [(src, dst) for src, dst in plan.pairs if is_photo(src)]
    videos = [(src, dst) for src, dst in plan.pairs if not is_photo(src)]
    display = Display(title="rtstyle stylize preview", window=True) if config.preview and videos else None

    def failed(srcs: list[Path], exc: Exception) -> None:
        if not config.keep_going or isinstance(exc, Interrupted):
            raise exc
        for src in srcs:
            report.failed.append((src, one_line(exc)))
            if on_failed is not None:
                on_failed(src, report.failed[-1][1])

    def finished(result: StylizeResult) -> None:
        report.done.append(result)
        if on_done is not None:
            on_done(result)

    try:
        if photos:
            try:  # one batched pass: a failure there fails every photo of it
                results = _stylize_photos(config, engine, photos, stop)
            except Exception as exc:  # noqa: BLE001 - with keep_going any failure is reported, not fatal
                failed([src for src, _ in photos], exc)
            else:
                for result in results:
                    finished(result)
                if results and results[-1].stats.interrupted:
                    raise Interrupted(f"interrupted after {sum(r.output is not None for r in results)} of "
                                      f"{len(photos)} photos; those are written")
        for src, dst in videos:
            try:
                result = _stylize_one(config, engine, src, dst, stop, display)
            except Exception as exc:  # noqa: BLE001 - with keep_going any failure of one file is reported
                failed([src], exc)
                continue
            finished(result)
            if result.stats.interrupted:
                raise Interrupted(_interrupted_message(result.frames_out, result.output))
    finally:
        if display is not None:
            display.close()
        if config.stats_path is not None and (report.done or report.failed):
            write_stats(config.stats_path, report, config.overwrite)
    return report


def _stylize_photos(config: StylizeConfig, engine: Engine, pairs: list[tuple[Path, Path]],
                    stop: threading.Event) -> list[StylizeResult]:
    """Photos through the engine in batches (``photos.stylize_photos``), one result each."""
    def model_size(w: int, h: int) -> tuple[int, int]:
        return fit_size(w, h, config.resize, config.max_side)

    if config.tile is None:
        bar = progress_bar(len(pairs), "photos", "photo", mode=config.progress)
    else:  # a large photo is minutes of tiles: count those
        total = tile_count([src for src, _ in pairs], model_size, config.tile, config.tile_pad)
        bar = progress_bar(total, f"photos ({len(pairs)})", "tile", mode=config.progress)
    try:
        stats, written = stylize_photos(
            pairs, engine, config.batch_size, model_size,
            lambda original, produced: output_size(config, original, produced), stop, bar,
            tile=config.tile, tile_pad=config.tile_pad)
    finally:
        bar.close()
    done = set(written)
    return [StylizeResult(src, dst if dst in done else None, 1, int(dst in done), stats, engine.describe(), kind="photo")
            for src, dst in pairs]


def _stylize_one(config: StylizeConfig, engine: Engine, src: Path, dst: Path, stop: threading.Event,
                 display: Display | None) -> StylizeResult:
    threads = plan_threads(engine_device=engine.device.type)  # decoder and encoder beside the engine (threads.py)
    if config.decoder == "pyav-cuda":
        source = device_file_source(src, engine.device, config.start, config.duration)
    else:
        source = FileSource(reader=VideoReader(src, config.start, config.duration, decoder=config.decoder,
                                               threads=threads.decode, limits=config.limits))
    info, reader = source.info, source.reader
    check_window(src, info, config.start)  # before an output is opened
    size = fit_size(info.width, info.height, config.resize, config.max_side)
    if isinstance(reader, DeviceVideoReader):
        reader.size = size  # resized on the GPU; Resized below then has nothing to do
    out_w, out_h = output_size(config, (info.width, info.height), (size[0] * engine.scale, size[1] * engine.scale),
                               info.rotation)
    writer = VideoWriter(  # frames of the model's output size are resized to this by WriterSink
        dst, out_w, out_h, info.time_base, info.frame_rate, config.encoder.beside_engine(engine.device.type, threads.encode),
        rotation=info.rotation, color=info.color, overwrite=config.overwrite,
        audio=_audio(reader, src) if info.has_audio else None,
        tag=RunTag.for_source(src, config.start, config.duration, config.run_id),
    )
    chain = build_sinks(config.temporal_smoothing, writer=WriterSink(writer),
                        preview=PreviewSink(display) if display is not None else None)
    tiling = Tiling(Resized(source, size), chain, config.tile, config.tile_pad)  # or frames whole
    bar = _progress_bar(config, source, src)

    def progress(stats: PipelineStats) -> None:
        done = tiling.frames_out(stats)
        bar.update(done - bar.n)
        bar.set_postfix(fps=f"{done / stats.wall_s if stats.wall_s > 0 else 0:.1f}", refresh=False)

    try:
        # On CUDA the output comes back through pinned buffers without stalling the engine; the
        # sinks here copy what they keep (smoother, writer, preview).
        pipe = PipelineConfig(batch_size=config.batch_size, output_ring=engine.device.type == "cuda")
        stats = tiling.finish(run_pipeline(tiling.source, engine, tiling.sink, pipe, stop, progress))
    except KeyboardInterrupt:  # a second Ctrl-C: no flush of in-flight frames, but still a playable file
        chain.close("interrupted")
        raise Interrupted(_interrupted_message(writer.frames_written, chain.output)) from None
    except BaseException:
        chain.close("failed")  # an error: no half-written output (an existing file stays as it was)
        raise
    finally:
        bar.close()
    # Also on interrupt: the partial file is finalised and playable, its audio cut with the video.
    chain.close("interrupted" if stats.interrupted else "done")
    output = chain.output
    if stats.frames_out == 0 and not stats.interrupted:
        raise InputError(_no_frames_message(src, info, config.start, config.duration))
    return StylizeResult(src, output, stats.frames_in, stats.frames_out, stats, engine.describe(),
                         source.warnings + writer.warnings)


def _interrupted_message(frames: int, output: Path | None) -> str:
    if output is None:
        return "interrupted before the first frame; nothing written"
    return f"interrupted after {frames} frames; partial output finalised: {output}"


def _progress_bar(config: StylizeConfig, source: FileSource, src: Path):
    info = source.info
    total = info.num_frames
    if total and (config.start or config.duration) and info.duration:
        span = min(info.duration - (config.start or 0), config.duration or info.duration)
        total = max(0, round(total * span / info.duration))
    return progress_bar(total or None, src.name, "frame", mode=config.progress)


def write_stats(path: Path, results: list[StylizeResult] | BatchReport, overwrite: bool = True) -> Path:
    """All results as JSON, written atomically; from a ``BatchReport`` also the failed inputs
    (with the reason) and the skipped ones."""
    path = Path(path)
    report = results if isinstance(results, BatchReport) else BatchReport(done=list(results))
    doc: dict = {"videos": [r.to_dict() for r in report.done]}
    if report.failed or report.skipped:
        doc["failed"] = [{"input": str(src), "reason": reason} for src, reason in report.failed]
        doc["skipped"] = [{"input": str(src), "reason": reason} for src, reason in report.skipped]
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def _audio(reader, src: Path) -> AudioSource:
    """The input's audio, shifted like its video (``VideoReader.audio_source``: the A/V offset is
    kept, priming packets too); readers without it (the GPU decoder) window it by time."""
    if hasattr(reader, "audio_source"):
        return reader.audio_source()
    return AudioSource(src, reader.start, reader.end)
