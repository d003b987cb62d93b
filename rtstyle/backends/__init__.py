"""Inference backends; each module exposes ``open(path, options) -> Engine``."""
