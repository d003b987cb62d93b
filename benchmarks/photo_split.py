"""The photo split of the style-model work of issue 31, written down before any training.

    python -m rtstyle.benchmarks.photo_split --photos ../shared/data/photos --out benchmarks/results/photo-split-2026-12-04
    python -m rtstyle.benchmarks.photo_split --photos ../shared/data/photos --link-train DIR   # a folder trainers read

Held out by source, not by position: ``../shared/data/photos`` holds series from one shoot or
scene (interior_pexels-7303773/-7303782, opencv_leuvenA/B, graf1/graf3, the two motorcycle
views...), so "every 10th photo" (the SR split of issue 17) keeps near-duplicates of held-out
photos in training, and held-out figures come out better than on photos a user brings. Here
whole sources are held out: every caer_*, opencv_* and skimage_* photo (32, the 6 sample photos
of rtstyle/assets/samples among them); the models train on gcompris-* and interior_* (154).
The yardstick (``rtstyle eval quality``: L-BFGS from noise, the expensive part) runs on 8 of the
held-out photos: the 6 samples plus two classic test photos chosen for detail (baboon, graf1).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from rtstyle.fsutil import atomic_path
from rtstyle.sources import list_images

HELD_OUT_SOURCES = ("caer", "opencv", "skimage")
SAMPLES = ("caer_puppy.jpg", "opencv_building.jpg", "opencv_fruits.jpg", "skimage_astronaut.jpg",
           "skimage_chelsea.jpg", "skimage_coffee.jpg")
YARDSTICK = (*SAMPLES, "opencv_baboon.jpg", "opencv_graf1.jpg")


def source_of(name: str) -> str:
    """``gcompris-animals_bison.jpg`` -> ``gcompris``; ``opencv_baboon.jpg`` -> ``opencv``."""
    return name.replace("-", "_").split("_", 1)[0]


def split(photos: Path) -> dict[str, list[str]]:
    names = sorted(p.name for p in list_images([Path(photos)]))
    held = [n for n in names if source_of(n) in HELD_OUT_SOURCES]
    missing = sorted(set(YARDSTICK) - set(held))
    if missing:
        raise SystemExit(f"{photos} lacks the yardstick photos {missing}")
    return {"train": [n for n in names if n not in held], "held_out": held, "yardstick": list(YARDSTICK)}


def link_train(photos: Path, dest: Path) -> Path:
    """A folder of symbolic links to the training photos only (what ``--data`` reads)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in split(photos)["train"]:
        link = dest / name
        if not link.exists():
            os.symlink(Path(photos).resolve() / name, link)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rtstyle.benchmarks.photo_split", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--photos", type=Path, required=True, help="../shared/data/photos")
    p.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    p.add_argument("--link-train", type=Path, help="make this folder of links to the training photos")
    args = p.parse_args(argv)
    parts = split(args.photos)
    if args.out is not None:
        rule = __doc__.split("\n\n", 2)[2].strip()
        with atomic_path(args.out.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps({"rule": " ".join(rule.split()), **parts}, indent=1) + "\n")
        lines = ["# Photo split (issue 31), written before training", "", rule, "",
                 f"- train ({len(parts['train'])}): " + ", ".join(parts["train"]), "",
                 f"- held out ({len(parts['held_out'])}): " + ", ".join(parts["held_out"]), "",
                 f"- yardstick ({len(parts['yardstick'])}): " + ", ".join(parts["yardstick"])]
        with atomic_path(args.out.with_suffix(".md")) as tmp:
            tmp.write_text("\n".join(lines) + "\n")
    if args.link_train is not None:
        print(link_train(args.photos, args.link_train))
    print(f"train {len(parts['train'])}, held out {len(parts['held_out'])}, yardstick {len(parts['yardstick'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
