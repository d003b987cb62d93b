"""rtstyle: real-time video stylization with feed-forward perceptual-loss networks.

``from rtstyle import Stylizer`` is the one-line API (``rtstyle/api.py``); it is imported on first
use so ``import rtstyle`` (and ``rtstyle --help``) stays free of torch.
"""

__version__ = "0.1.0"

__all__ = ["Stylizer", "__version__"]


def __getattr__(name: str):
    if name == "Stylizer":
        from .api import Stylizer

        return Stylizer
    raise AttributeError(f"module 'rtstyle' has no attribute {name!r}")
