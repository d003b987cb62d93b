"""Training recipes for ``rtstyle train style --preset NAME`` (torch-free: the CLI reads them to
build its help).

* ``paper`` (the default): Johnson et al. 2016's recipe -- their network (32 wide, 5 residual
  blocks), 40k iterations of batch 4 on 256 px crops, Adam at 1e-3, content 1 / style 5 / TV 1e-4.
* ``cpu``: the recipe the bundled styles are trained with (their checkpoints record it; a test
  compares), chosen by the architecture study of issue 31: the ``lowres`` network (its residual
  blocks at 1/8 resolution), batch 4 on 256 px crops as in the paper, style 2.5, trained to a CPU
  time budget (20 CPU-minutes) rather than an iteration count.
* ``fast``: the earlier bundled models' recipe: the small network (16 wide, 3 residual blocks),
  batch 2 on 128 px crops, style 2.5, a few hundred iterations -- minutes on a laptop CPU.

A preset fills only the options the user left at their defaults; options given on the command
line win. ``preset_of(meta)`` names the preset a checkpoint's recorded recipe matches
(``rtstyle models`` shows it).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from .errors import ConfigError, InputError
from .netconfig import STYLE_ARCH_PRESETS, StyleNetConfig, describe_style_arch

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"arch": "johnson", "iterations": 40_000, "batch_size": 4, "image_size": 256, "lr": 1e-3,
              "content_weight": 1.0, "style_weight": 5.0, "tv_weight": 1e-4},
    "cpu": {"arch": "lowres", "iterations": 100_000, "max_cpu_seconds": 1200.0, "batch_size": 4, "image_size": 256,
            "lr": 1e-3, "content_weight": 1.0, "style_weight": 2.5, "tv_weight": 1e-4},
    "fast": {"arch": "fast", "iterations": 450, "batch_size": 2, "image_size": 128, "lr": 1e-3,
             "content_weight": 1.0, "style_weight": 2.5, "tv_weight": 1e-4},
}
# What identifies a recipe: iterations vary from model to model within one recipe.
_RECIPE_KEYS = ("arch", "batch_size", "image_size", "lr", "content_weight", "style_weight", "tv_weight")


def describe(name: str) -> str:
    """One line for --help, e.g. ``fast: fast net (16 wide, 3 residual), 450 it x batch 2 at 128 px, ...``."""
    p = PRESETS[name]
    arch = STYLE_ARCH_PRESETS[p["arch"]]
    length = f"{p['max_cpu_seconds']:g} CPU-s" if "max_cpu_seconds" in p else f"{p['iterations']} it"
    return (f"{name}: {p['arch']} net ({describe_style_arch(arch)}), {length} x batch "
            f"{p['batch_size']} at {p['image_size']} px, lr {p['lr']:g}, loss content {p['content_weight']:g} / "
            f"style {p['style_weight']:g} / tv {p['tv_weight']:g}")


def apply_preset(name: str, values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (parsed options) with ``name``'s recipe in every option still at its ``defaults``
    value (the user did not change it)."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    out = dict(values)
    for key, value in PRESETS[name].items():
        if key in out and out[key] == defaults.get(key):
            out[key] = value
    return out


def recipe_of(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """A style checkpoint's recorded recipe in the presets' terms; None for other tasks."""
    if meta.get("task") != "style" or meta.get("model", {}).get("arch") not in ("style", None):
        return None
    model, train, loss = meta.get("model", {}), meta.get("train", {}), meta.get("loss", {})
    arch = style_arch_name(model)
    return {"arch": arch, "margin": model.get("margin", 0), "iterations": train.get("iterations"), "batch_size": train.get("batch_size"),
            "image_size": train.get("image_size"), "lr": train.get("lr"),
            "content_weight": loss.get("content_weight"), "style_weight": loss.get("style_weight"),
            "tv_weight": loss.get("tv_weight")}


def preset_of(meta: Mapping[str, Any]) -> str | None:
    """The preset whose recipe a checkpoint was trained with (iterations aside), or None."""
    recipe = recipe_of(meta)
    if recipe is None:
        return None
    for name, preset in PRESETS.items():
        if all(_same(recipe.get(k), preset[k]) for k in _RECIPE_KEYS):
            return name
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-9 * max(1.0, abs(b))
    return a == b


def style_arch_name(model: Mapping[str, Any]) -> str:
    """The ``--arch`` name of a checkpoint's style network config, or its description when no
    preset matches (a custom --width, say)."""
    try:
        config = StyleNetConfig(**{k: v for k, v in model.items() if k != "arch"})
    except (TypeError, ConfigError):
        return "unknown"
    # The margin is not part of a design's name (a preset trained with --margin 8 is still that preset;
    # describe_style_arch and recipe_of say it).
    body = replace(config, margin=0)
    return next((name for name, preset in STYLE_ARCH_PRESETS.items() if preset == body), describe_style_arch(config))
