"""rtstyle: real-time video stylization with feed-forward perceptual-loss networks."""

__version__ = "0.1.0"
