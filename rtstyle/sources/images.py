"""Photos as a source: image files and folders of images, one frame each, in the order given
(folders sorted by name). Frames are 1/1000 s apart so a writer could make a slideshow of them."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import InputError
from ..frames import IMAGE_EXTENSIONS, MILLISECONDS, Frame, load_image
from ..fsutil import as_paths
from .base import Source


def list_images(paths: str | Path | Sequence[str | Path], limit: int | None = None) -> list[Path]:
    """Image files named directly, plus those in named folders (sorted, not recursive); one path
    may be given alone."""
    files: list[Path] = []
    for path in as_paths(paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {path}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"--images: {path} is neither an image file nor a folder")
    if not files:
        raise InputError("--images: no images given")
    return files[:limit] if limit else files


class ImageSource(Source):
    """Each image of ``paths`` (files and/or folders) as one frame, EXIF rotation applied,
    optionally shrunk so its longer side is at most ``max_side``. ``self.paths[frame.index]`` is
    the file a frame came from."""

    def __init__(self, paths: str | Path | Sequence[str | Path], max_side: int | None = None, limit: int | None = None):
        super().__init__()
        self.paths = list_images(paths, limit)
        self.max_side = max_side

    def read(self) -> Frame | None:
        i = self.frames_read
        if i >= len(self.paths):
            self.end_reason = "source_ended"
            return None
        self.frames_read += 1
        return Frame(load_image(self.paths[i], self.max_side), i, MILLISECONDS, i, 1)
