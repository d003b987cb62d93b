"""The models a studio serves, what kind each is, and how to open an engine for one.

Names on the wire are the catalogue's own (a bundled name or a file's stem); a client picks from
them and never sends a path. AdaIN models start from a bundled painting until the user uploads
another style image; StyleBank models list their banks as ``style_index`` choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..conditioning import StyleChoice
from ..engine import Engine, EngineOptions, open_engine
from ..errors import InputError
from ..models import BUNDLED_DIR, bundled_models, resolve_model

DEFAULT_STYLE_IMAGE = BUNDLED_DIR.parent / "assets" / "samples" / "styles" / "starry_night.jpg"


@dataclass(frozen=True)
class ServedModel:
    name: str
    path: Path
    arch: str  # style | adain | stylebank | unknown (an exported file: a style net)
    styles: tuple[str, ...] = ()  # StyleBank bank names

    def to_dict(self) -> dict:
        return {"name": self.name, "arch": self.arch, "styles": list(self.styles),
                "style_image": self.arch == "adain", "alpha": self.arch == "adain"}


@dataclass
class Catalog:
    models: dict[str, ServedModel]
    backend: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    extra: dict = field(default_factory=dict)

    @classmethod
    def build(cls, names: list[str] | tuple[str, ...] = (), backend: str = "auto", device: str = "auto",
              precision: str = "auto") -> Catalog:
        """``names`` (bundled names or model files); none: every bundled image-to-image style model."""
        if not names:
            names = [n for n, p in bundled_models().items() if _describe(p)[0] in ("style", "adain", "stylebank")]
        models: dict[str, ServedModel] = {}
        for name in names:
            path = resolve_model(name)
            arch, styles = _describe(path)
            if arch in ("sr", "texture"):
                what = "a super-resolution model" if arch == "sr" else "a texture generator (noise in)"
                raise InputError(f"--model {name} is {what}; the studio serves style models")
            label = str(name) if str(name) in bundled_models() else path.stem
            if label in models:
                raise InputError(f"two served models are both called {label!r}; rename one of the files")
            models[label] = ServedModel(label, path, arch, styles)
        if not models:
            raise InputError("no style model to serve; pass --model NAME_OR_PATH")
        return cls(models, backend, device, precision)

    def get(self, name: str) -> ServedModel:
        if name not in self.models:
            raise InputError(f"unknown model {name!r}; choose from {', '.join(self.models)}")
        return self.models[name]

    def default_choice(self, name: str, alpha: float | None = None, style_index: int | None = None,
                       style_image: Path | None = None) -> StyleChoice:
        """The style choice a model needs to open: AdaIN gets an image (the bundled painting by
        default), StyleBank a bank (0 by default); other models take none."""
        model = self.get(name)
        if model.arch == "adain":
            return StyleChoice(style_image=style_image or DEFAULT_STYLE_IMAGE, alpha=alpha)
        if model.arch == "stylebank":
            index = 0 if style_index is None else int(style_index)
            if not 0 <= index < max(1, len(model.styles)):
                raise InputError(f"style_index {index} out of range for {name}; choose 0..{len(model.styles) - 1}")
            return StyleChoice(style_index=index)
        return StyleChoice()

    def open(self, name: str, style: StyleChoice, batch_size: int = 1) -> Engine:
        opts = EngineOptions(device=self.device, precision=self.precision, batch_size=batch_size, style=style)
        return open_engine(self.get(name).path, self.backend, opts)

    def to_list(self) -> list[dict]:
        return [m.to_dict() for m in self.models.values()]


def _describe(path: Path) -> tuple[str, tuple[str, ...]]:
    if path.suffix != ".safetensors":
        return "unknown", ()
    from ..checkpoint import read_metadata

    meta = read_metadata(path)
    if meta["task"] != "style":
        return meta["task"], ()
    arch = meta["model"].get("arch", "style")
    if arch == "stylebank":
        return arch, tuple(s.get("name", f"style {i}") for i, s in enumerate(meta.get("styles", [])))
    return ("adain" if arch == "adain" else "style"), ()
