"""The styles ``rtstyle live`` switches between with keys: several models (opened on first use
and kept) and, for AdaIN models, the style images of a folder. ``Styles`` is itself an engine
for the pipeline: each batch goes to the style selected at that moment.

Keys: ``q``/Esc quit, ``n``/space next model, ``p`` previous, ``1``-``9`` pick; with an AdaIN
model and ``style_dir``, ``s`` applies the folder's next style image (``a`` the previous one);
``[``/``]`` lower/raise the style strength (``rtstyle.strength``: a blend with the camera picture,
any model) by ``STRENGTH_STEP``.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Sequence

import torch

from ..conditioning import StyleChoice, load_style_image
from ..engine import Engine, EngineOptions, open_engine, style_switcher
from ..errors import InputError
from ..frames import IMAGE_EXTENSIONS
from ..strength import apply_strength, check_strength

STRENGTH_STEP = 0.1


def style_images(folder: Path) -> list[Path]:
    """The image files in ``folder`` (sorted), or an InputError naming the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--style-dir {folder} is not a folder")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not found:
        raise InputError(f"no style images ({', '.join(IMAGE_EXTENSIONS)}) in --style-dir {folder}")
    return found


class Styles:
    """The models to cycle through, opened on first use and kept; and, for AdaIN models, the
    style images of ``style_dir`` to cycle through. Keys change the selection on the caller's
    thread; the pipeline's engine thread calls ``styles(frames)`` with the current one."""

    def __init__(self, models: Sequence[str | Path], backend: str = "auto", device: str = "auto",
                 precision: str = "auto", style: StyleChoice | None = None, style_dir: Path | None = None,
                 engines: list[Engine] | None = None, trust_model: bool = False, strength: float = 1.0):
        self.names = [Path(str(m)).stem for m in models] if engines is None else [f"engine {i}" for i in range(len(engines))]
        self._engines: list[Engine | None] = list(engines) if engines is not None else [None] * len(models)
        self._models, self._backend, self._device, self._precision = list(models), backend, device, precision
        self._style = style or StyleChoice()
        self._trust_model = trust_model  # rtstyle.trust: .pt2 / engines not produced here
        self.index = 0
        self.images = style_images(style_dir) if style_dir is not None else []
        self.image_index = 0
        self.strength = check_strength(strength)  # keys change it on the caller's thread
        self._applied: dict[int, int] = {}  # engine index -> style image index it holds
        self._served: collections.deque[tuple[int, int]] = collections.deque()  # per frame run, in order

    def _style_choice(self, image_index: int) -> StyleChoice:
        choice = self._style
        if self.images:
            return StyleChoice(style_image=self.images[image_index], alpha=choice.alpha,
                               style_index=choice.style_index, style_size=choice.style_size)
        return choice

    def current(self, selection: tuple[int, int] | None = None) -> Engine:
        """The engine for ``selection`` (model index, style image index; default: the current one),
        opened on first use, holding that style image."""
        index, image = selection if selection is not None else self.selection
        if self._engines[index] is None:
            opts = EngineOptions(device=self._device, precision=self._precision, batch_size=1,
                                 style=self._style_choice(image), trust_model=self._trust_model)
            self._engines[index] = open_engine(self._models[index], self._backend, opts)
            self._applied[index] = image
        engine = self._engines[index]
        if self.images and self._applied.get(index, image) != image:
            style_switcher(engine).set_style(load_style_image(self.images[image], self._style.style_size))
            self._applied[index] = image
        return engine

    # -- the engine interface the pipeline uses
    @property
    def device(self) -> torch.device:
        return self.current().device

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        selection, strength = self.selection, self.strength  # read once: a key may change them meanwhile
        out = apply_strength(frames, self.current(selection)(frames), strength)
        self._served.extend([selection] * len(frames))
        return out

    def served_style(self, frame=None) -> tuple[int, int]:
        """The selection that stylized the next frame to reach the sinks (frames reach them in
        the order the engine ran them, and none is dropped after the engine)."""
        return self._served.popleft() if self._served else self.selection

    def describe(self) -> str:
        return self.current().describe()

    # -- keys
    @property
    def label(self) -> str:
        name = self.names[self.index]
        name = f"{name}: {self.images[self.image_index].stem}" if self.images else name
        return name if self.strength >= 1 else f"{name} @ {self.strength:.1f}"

    @property
    def selection(self) -> tuple[int, int]:
        return self.index, self.image_index

    def handle_key(self, key: int) -> bool:
        """Apply a key; returns True for quit."""
        if key in (ord("q"), 27):
            return True
        if key in (ord("n"), ord(" ")):
            self.index = (self.index + 1) % len(self._engines)
        elif key == ord("p"):
            self.index = (self.index - 1) % len(self._engines)
        elif ord("1") <= key <= ord("9") and key - ord("1") < len(self._engines):
            self.index = key - ord("1")
        elif key in (ord("s"), ord("a")) and self.images:
            self.image_index = (self.image_index + (1 if key == ord("s") else -1)) % len(self.images)
        elif key in (ord("["), ord("]")):
            step = STRENGTH_STEP if key == ord("]") else -STRENGTH_STEP
            self.strength = round(min(1.0, max(0.0, self.strength + step)), 2)
        return False
