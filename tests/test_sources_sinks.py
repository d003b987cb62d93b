"""The frame path's parts on their own: sources (images, files, cameras, resizing) and the sink
chain (order, close outcomes, writers that never leave a half-written file)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rtstyle.errors import InputError
from rtstyle.frames import MILLISECONDS, Frame, bgr_to_rgb, fit_size, resize, rgb_to_bgr
from rtstyle.pipeline import PipelineConfig, StopFlag, run_pipeline
from rtstyle.sinks import CallbackSink, Sink, SinkChain, StatsSink, WriterSink, build_sinks
from rtstyle.sources import CameraSource, FileSource, ImageSource, Resized, Source
from rtstyle.video import VideoWriter
from tests.helpers_video import IdentityEngine, frame_pattern, make_clip, read_frames

from .conftest import SAMPLES
from .test_live import FakeCapture

PHOTOS = SAMPLES / "samples" / "photos"


def test_colour_and_size_helpers():
    rgb = frame_pattern(3, 20, 10)
    assert np.array_equal(bgr_to_rgb(rgb_to_bgr(rgb)), rgb) and np.array_equal(rgb_to_bgr(rgb), rgb[..., ::-1])
    assert bgr_to_rgb(np.full((4, 5), 7, np.uint8)).shape == (4, 5, 3)
    assert bgr_to_rgb(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    assert fit_size(640, 480, max_side=320) == (320, 240) and fit_size(64, 48, max_side=320) == (64, 48)
    assert fit_size(640, 480, resize=(10, 20), max_side=5) == (10, 20)
    assert resize(rgb, (20, 10)) is rgb and resize(rgb, (10, 5)).shape == (5, 10, 3)


def test_image_source_reads_files_and_folders_in_order():
    source = ImageSource([PHOTOS], max_side=64)
    frames = list(source)
    assert len(frames) == len(source.paths) >= 2 and source.end_reason == "source_ended"
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(max(f.image.shape[:2]) <= 64 and f.image.dtype == np.uint8 for f in frames)
    with pytest.raises(InputError, match="neither an image file nor a folder"):
        ImageSource([PHOTOS / "nope.jpg"])


def test_resized_brings_every_frame_to_the_first_frames_fitted_size():
    class Growing(Source):
        def read(self):
            if self.frames_read == 3:
                return None
            self.frames_read += 1
            w = 40 + 20 * self.frames_read  # resolution changes mid-stream
            return Frame(frame_pattern(self.frames_read, w, 30), self.frames_read, MILLISECONDS, self.frames_read)

    frames = list(Resized(Growing(), max_side=32))
    assert [f.image.shape for f in frames] == [(16, 32, 3)] * 3


def test_file_source_matches_the_reader_and_paces_when_asked(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=5, fps=20, audio=False)
    frames = list(FileSource(clip))
    assert [f.index for f in frames] == list(range(5)) and all(f.captured_at is not None for f in frames)
    paced = FileSource(clip, realtime=True)
    assert paced.live
    got = list(paced)
    assert got[-1].captured_at - got[0].captured_at >= 0.15  # 4 intervals of 50 ms


def test_camera_source_converts_bgr_and_stops_on_request():
    stop = StopFlag()
    cam = CameraSource("0", lambda spec: FakeCapture(frames=3), stop)
    with cam:
        first = cam.read()
        # Whichever frame was newest, it comes out as the RGB picture the camera sent as BGR.
        assert any(np.array_equal(first.image, frame_pattern(k, 32, 24)) for k in (1, 2, 3))
        while cam.read() is not None:
            pass
    assert cam.end_reason == "disconnected" and cam.frames_captured == 3
    stopped = CameraSource("0", lambda spec: FakeCapture(interval=0.01), StopFlag())
    stopped._stop.set()
    assert stopped.read() is None and stopped.end_reason == "interrupted"
    stopped.stop()


class _Broken(Sink):
    def __init__(self):
        self.closed = None

    def close(self, outcome="done"):
        self.closed = outcome
        raise OSError("disk gone")


def test_chain_order_and_close_reaches_every_sink():
    seen = []
    stats = StatsSink()
    first, last = _Broken(), _Broken()
    chain = SinkChain([first, CallbackSink(lambda im, f: seen.append(int(im[0, 0, 0]))), stats, last])
    run_pipeline([Frame(np.full((4, 4, 3), i, np.uint8), i, MILLISECONDS, i) for i in range(5)], IdentityEngine(),
                 chain, PipelineConfig(batch_size=2))
    assert seen == list(range(5)) and stats.frames == 5
    with pytest.raises(OSError, match="disk gone"):
        chain.close("done")
    assert first.closed == "done" and last.closed == "failed"  # after a failure the rest clean up as failed


def test_writer_sink_keeps_or_removes_its_file(tmp_path):
    for outcome, kept in (("done", True), ("interrupted", True), ("failed", False)):
        path = tmp_path / f"{outcome}.mp4"
        sink = WriterSink(open_writer=lambda w, h, path=path: VideoWriter(path, w, h))
        chain = build_sinks(writer=sink)
        for i in range(3):
            chain(frame_pattern(i, 32, 24), Frame(frame_pattern(i, 32, 24), i * 40, MILLISECONDS, i))
        chain.close(outcome)
        assert path.exists() is kept and (chain.output == path) is kept
        if kept:
            assert len(read_frames(path)[0]) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial files left
    with pytest.raises(ValueError, match="outcome"):
        SinkChain([]).close("maybe")


def test_a_device_decoder_plugs_in_as_a_file_source(tmp_path):
    """``gpu.DeviceVideoReader`` frames are torch tensors (on the GPU on CUDA machines; its software
    path on the CPU here): the batcher stacks them where they are and the pipeline runs as usual."""
    from rtstyle.gpu.decode import DeviceVideoReader

    clip = make_clip(tmp_path / "c.mp4", frames=5, audio=False)
    engine, seen = IdentityEngine(), []
    source = FileSource(reader=DeviceVideoReader(clip, "cpu", hardware=False))
    stats = run_pipeline(source, engine, lambda im, f: seen.append(im), PipelineConfig(batch_size=2))
    direct = [f.image.numpy() for f in DeviceVideoReader(clip, "cpu", hardware=False)]
    assert stats.frames_out == 5 and engine.batches == [2, 2, 1]
    assert all(np.array_equal(a, b) for a, b in zip(seen, direct))


def test_push_source_newest_only_and_every_frame():
    from rtstyle.sources import PushSource

    live = PushSource()
    for i in range(3):
        assert live.push(frame_pattern(i, 8, 8))
    live.end()
    got = list(live)
    assert len(got) == 1 and np.array_equal(got[0].image, frame_pattern(2, 8, 8)) and live.frames_dropped == 2
    assert not live.push(frame_pattern(9, 8, 8))  # ended: the producer is told to stop

    queued = PushSource(newest_only=False, maxsize=2)
    out = []

    def produce():
        for i in range(6):
            queued.push(frame_pattern(i, 8, 8), pts=i * 40)
        queued.end()

    producer = threading.Thread(target=produce)
    producer.start()
    stats = run_pipeline(queued, IdentityEngine(), lambda im, f: out.append((f.index, f.pts)), PipelineConfig(2))
    producer.join()
    assert out == [(i, i * 40) for i in range(6)] and stats.frames_dropped == 0 and queued.end_reason == "source_ended"


def test_smoothing_restarts_when_the_style_changes():
    import torch

    from rtstyle.live import Styles
    from rtstyle.sinks import SmoothingSink

    styles = Styles(("a", "b"), engines=[IdentityEngine(), IdentityEngine()])
    batch = torch.from_numpy(frame_pattern(0, 32, 24))[None]
    styles(batch), styles(batch)
    styles.handle_key(ord("n"))
    styles(batch)
    assert [styles.served_style() for _ in range(3)] == [(0, 0), (0, 0), (1, 0)]

    src = frame_pattern(0, 64, 48)  # a still scene: every pixel's motion is trustworthy
    a, b = np.full_like(src, 50), np.full_like(src, 200)
    served = iter([0, 0, 1])
    sink = SmoothingSink(0.9, style_of=lambda frame: next(served))
    outs = [sink.write(img, Frame(src, i, MILLISECONDS, i)) for i, img in enumerate([a, a, b])]
    assert np.array_equal(outs[1], a) and np.array_equal(outs[2], b)  # the new style is not blended with the old
    unkeyed = SmoothingSink(0.9)
    blended = [unkeyed.write(img, Frame(src, i, MILLISECONDS, i)) for i, img in enumerate([a, a, b])][2]
    assert abs(int(blended.mean()) - 65) <= 1  # without the key: 0.9 * 50 + 0.1 * 200
