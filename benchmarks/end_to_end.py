"""The whole pipeline on a clip: decode only, engine only, encode only and the threaded pipeline,
and pipeline efficiency = end-to-end fps / slowest stage fps.

Each stage runs as ``rtstyle stylize`` runs it: the same split of the cores (``threads.py``: with
the engine on a GPU the encoder gets the cores), and with the engine on CUDA the output converted
to NV12 on the GPU and copied back through the pinned output ring, so the encoder stage times the
encoder alone (NV12 in, no host colour conversion)."""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from rtstyle.engine import EngineOptions, open_engine
from rtstyle.gpu.colour import output_spec
from rtstyle.threads import plan_threads

from .config import BenchConfig
from .model_only import BenchModel, BenchProgress, synthetic_frames
from .timing import synchronize


def make_clip(path: Path, width: int, height: int, frames: int, seed: int) -> Path:
    from fractions import Fraction

    from rtstyle.video import EncoderConfig, VideoWriter

    time_base = Fraction(1, 30)
    writer = VideoWriter(path, width, height, time_base, Fraction(30), EncoderConfig(crf=20, preset="veryfast"))
    with writer:
        for i, image in enumerate(_cycle(synthetic_frames(min(frames, 30), width, height, seed), frames)):
            writer.write(image, pts=i)
    return path


def _cycle(pool: list, n: int) -> Iterator:
    for i in range(n):
        yield pool[i % len(pool)]


def pipeline_efficiency(end_to_end_fps: float, stage_fps: dict[str, float]) -> dict[str, Any]:
    """Efficiency = end-to-end fps / fps of the slowest stage (1.0: the pipeline hides every
    other stage behind the slowest one)."""
    if not stage_fps or end_to_end_fps < 0 or any(v <= 0 for v in stage_fps.values()):
        raise ValueError(f"pipeline_efficiency: need positive stage fps, got {stage_fps}")
    slowest = min(stage_fps, key=stage_fps.get)
    return {"slowest_stage": slowest, "slowest_fps": stage_fps[slowest], "efficiency": end_to_end_fps / stage_fps[slowest]}


def _timed(fn: Callable[[], int], device: torch.device, repeats: int) -> dict[str, Any]:
    """Run ``fn`` (returns frames processed) ``repeats`` times; the median run's fps, and all."""
    runs = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        frames = fn()
        synchronize(device)
        runs.append((frames, time.perf_counter() - t0))
    fps = [f / sec for f, sec in runs]
    return {"frames": runs[0][0], "seconds": [sec for _, sec in runs], "fps": statistics.median(fps), "fps_runs": fps}


def measure_pipeline(model: BenchModel, cfg: BenchConfig, device: torch.device, workdir: Path, progress: BenchProgress) -> dict:
    from rtstyle.pipeline import HostBatcher, PipelineConfig, run_engine, run_pipeline
    from rtstyle.video import VideoReader, VideoWriter, probe

    if cfg.clip is not None:
        clip = Path(cfg.clip)
    else:
        clip = make_clip(workdir / "clip.mp4", *cfg.clip_size, cfg.clip_frames, cfg.seed)
    info = probe(clip)
    opts = EngineOptions(device=str(device), batch_size=cfg.pipeline_batch)
    engine = open_engine(model.path, "auto", opts)
    on_gpu = engine.device.type == "cuda"
    threads = plan_threads(engine_device=engine.device.type)  # the same split of the cores as rtstyle stylize
    out_w, out_h = info.width * engine.scale, info.height * engine.scale
    # On CUDA the engine's output becomes NV12 on the GPU, with the writer's own conversion.
    nv12 = output_spec(0, 0) if on_gpu and out_w % 2 == 0 and out_h % 2 == 0 else None
    result: dict[str, Any] = {
        "clip": {"path": str(clip) if cfg.clip else "generated", "width": info.width, "height": info.height,
                 "codec": info.codec, "frames": info.num_frames},
        "engine": {"backend": engine.backend, "description": engine.describe(), "reason": engine.reason},
        "batch": cfg.pipeline_batch,
        "encoder": dataclasses.asdict(_encoder_config(engine.device.type, threads.encode)),
        "threads": dataclasses.asdict(threads),
        "colour_conversion": "RGB to NV12 on the GPU before the copy back" if nv12 else "RGB to YUV by swscale on the CPU",
    }

    def decode_only() -> int:
        return sum(1 for _ in VideoReader(clip, threads=threads.decode))

    repeats = 1 if cfg.quick else 3
    stages = {"decode": _timed(decode_only, device, repeats)}
    progress.step("decode")
    n = stages["decode"]["frames"]
    # Engine and encoder get the clip's own frames; a few batches, cycled, keep memory flat.
    pool = [f.image for _, f in zip(range(cfg.rotate * cfg.pipeline_batch), VideoReader(clip, threads=threads.decode))]
    # A ring as large as the pool: every batch keeps its own (on CUDA pinned) buffer.
    batcher = HostBatcher(cfg.pipeline_batch, engine.device, ring=cfg.rotate + 1)
    batches = [batcher.add(im) for im in pool]
    batches = [b.frames for b in batches + [batcher.flush()] if b is not None]

    def engine_only() -> int:
        done = 0
        for b in _cycle(batches, -(-n // cfg.pipeline_batch)):
            done += len(run_engine(engine, b, nv12=nv12))
        return done

    # Also the engine's warm-up, so no stage pays for first-call set-up.
    out_frames = [im for b in batches for im in run_engine(engine, b, nv12=nv12)]
    stages["engine"] = _timed(engine_only, device, repeats)
    progress.step("engine")

    def writer(name: str) -> VideoWriter:
        return VideoWriter(workdir / name, out_w, out_h, info.time_base, info.frame_rate,
                           _encoder_config(engine.device.type, threads.encode), overwrite=True)

    def encode_only() -> int:
        with writer("encode.mp4") as out:
            write = out.write_nv12 if nv12 else out.write
            for i, image in enumerate(_cycle(out_frames, n)):
                write(image, pts=i)
        return n

    stages["encode"] = _timed(encode_only, device, repeats)
    progress.step("encode")

    def whole() -> int:
        with writer("pipeline.mp4") as out:
            write = out.write_nv12 if nv12 else out.write
            stats = run_pipeline(VideoReader(clip, threads=threads.decode), engine, lambda image, item: write(image, item.pts),
                                 PipelineConfig(batch_size=cfg.pipeline_batch, output_ring=on_gpu, output_nv12=nv12))
        result["pipeline_stats"] = stats.to_dict()
        return stats.frames_out

    end_to_end = _timed(whole, device, repeats)
    progress.step("pipeline")
    result["stages"] = stages
    result["end_to_end"] = end_to_end
    result.update(pipeline_efficiency(end_to_end["fps"], {k: v["fps"] for k, v in stages.items()}))
    return result


def _encoder_config(device_type: str, threads: int):
    from rtstyle.video import EncoderConfig

    return EncoderConfig().beside_engine(device_type, threads)  # the encoder stylize uses by default


