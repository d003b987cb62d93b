"""Video files in and out: probing, decoding and encoding with PyAV (OpenCV as a decode fallback).

Public API
----------
* ``probe(path, limits=None) -> VideoInfo``: size, time base, frame rate, frame count, rotation,
  colour tags and audio streams of the first video stream; raises ``InputError`` (one line) for
  a missing, empty, non-video or frameless file, or a first frame over ``limits.max_pixels``.
* ``VideoReader(path, start=None, duration=None, decoder="auto", limits=None)``: iterate
  ``Frame``s (``frames.Frame``: uint8 RGB HWC + pts in the stream's time base) in presentation
  order, threaded decoding. 10-bit, alpha and grayscale sources come out as RGB; an animated WebP
  is read with PIL (``animated.py``), every frame with its duration. A truncated or corrupt file
  ends at the last good frame and records a line in ``reader.warnings``; ``limits``
  (``rtstyle.limits.Limits``) stop it with an ``InputError`` whatever the header said.
* ``VideoWriter(path, width, height, time_base, ...)``: encode RGB frames with their pts (VFR
  stays VFR), copy rotation, colour tags and audio (stream copy, AAC re-encode where the
  container cannot hold the source codec). Every extension it takes (``writer.OUTPUT_FORMATS``)
  holds every frame: .gif, .png (APNG) and .webp are animations with each frame's delay; .jpg
  and other one-picture formats are refused. It writes to a hidden file beside ``path``;
  ``close()`` always finalises the container and renames it into place, ``close(keep=False)``
  removes it instead. ``tag=RunTag(...)`` (``video.tag``): the run tag sealed into the file at
  finalisation (source, window, frames written, finished or interrupted), which ``--skip-existing``
  reads back with ``read_tag(path)``.

Frames follow ``frames.py``: uint8 RGB, channels last. Modules: ``probe.py``, ``reader.py``,
``writer.py`` (with the audio carried over), ``animated.py`` (APNG and animated WebP), ``tag.py``;
import the names from ``rtstyle.video``.
"""

from __future__ import annotations

from ..frames import Frame
from .probe import DEFAULT_TIME_BASE, VIDEO_EXTENSIONS, ColorInfo, VideoInfo, probe
from .reader import VideoReader
from .writer import AudioSource, EncoderConfig, VideoWriter, choose_pix_fmt

__all__ = ["DEFAULT_TIME_BASE", "VIDEO_EXTENSIONS", "AudioSource", "ColorInfo", "EncoderConfig", "Frame", "VideoInfo",
           "VideoReader", "VideoWriter", "choose_pix_fmt", "probe"]
