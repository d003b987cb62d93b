"""The loss log every trainer writes next to its checkpoint: a CSV of the loss terms per logged
step and its PNG plot (log scale)."""

from __future__ import annotations

import csv
from pathlib import Path

from rtstyle.fsutil import atomic_path

TERMS = ("total", "content", "style", "tv", "pixel", "stability", "colour")


class LossLog:
    """CSV of loss terms per logged step; on resume, rows after the resumed step are dropped."""

    FIELDS = ("step", *TERMS, "it_per_s", "elapsed_s", "cpu_s")  # cpu_s: training CPU time so far, resumes included

    def __init__(self, path: Path, start_step: int):
        self.path = path
        rows = []
        if start_step > 0 and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, self.FIELDS)
            w.writeheader()
            w.writerows(rows)

    def write(self, step: int, terms: dict[str, float], rate: float, elapsed: float, cpu: float) -> None:
        row = {"step": step, **{k: f"{v:.6g}" for k, v in terms.items()}, "it_per_s": f"{rate:.3f}",
               "elapsed_s": f"{elapsed:.1f}", "cpu_s": f"{cpu:.1f}"}
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.FIELDS).writerow(row)

    def plot(self, out: Path, title: str) -> Path:
        return plot_losses(self.path, out, title)


def plot_losses(csv_path: Path, out: Path, title: str) -> Path:
    """Loss curves (log scale) from a trainer's CSV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = [int(r["step"]) for r in rows]
    for name in TERMS:
        values = [float(r[name]) for r in rows if r.get(name)]
        if values and len(values) == len(steps) and any(v > 0 for v in values):
            ax.plot(steps, values, label=name, linewidth=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("weighted loss")
    ax.set_title(f"{title}: training losses")
    ax.grid(True, which="both", alpha=0.3)
    if steps:
        ax.legend()
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out
