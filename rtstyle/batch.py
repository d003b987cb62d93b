"""Runs over many inputs (``rtstyle stylize`` on files and folders): what will be done
(``BatchPlan``: good pairs, bad inputs with the reason, inputs skipped by -n) and what was done
(``BatchReport``: done / failed / skipped). ``rtstyle.stylize`` fills them; the CLI prints them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError, RtstyleError


@dataclass
class BatchPlan:
    """What a run over many inputs will do: ``pairs`` to process, ``bad`` inputs (with the reason)
    and ``skipped`` ones (-n and an existing output)."""

    pairs: list[tuple[Path, Path]]
    bad: list[tuple[Path, RtstyleError]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def refuse(self, src: Path, error: RtstyleError) -> None:
        """``src`` found bad by a later check (its header, its decoder): out of ``pairs``, into ``bad``."""
        self.pairs = [(s, d) for s, d in self.pairs if s != src]
        self.bad.append((src, error))

    def raise_if_bad(self, keep_going: bool) -> None:
        """One line naming every bad input, unless ``keep_going`` (then they are reported as failed)."""
        if not self.bad or keep_going:
            return
        total = len(self.pairs) + len(self.bad) + len(self.skipped)
        hint = "; pass --keep-going to process the others" if total > len(self.bad) else ""
        if len(self.bad) == 1:  # the error as it was, so a single input reads as before
            error = self.bad[0][1]
            if not hint:
                raise error
            raise type(error)(f"{error}{hint}")
        names = "; ".join(str(error) for _, error in self.bad)
        kinds = {type(error) for _, error in self.bad}
        kind = kinds.pop() if len(kinds) == 1 else InputError
        raise kind(f"{len(self.bad)} of {total} inputs cannot be processed: {names}{hint}")


@dataclass
class BatchReport:
    """Outcome of a run over many inputs."""

    done: list = field(default_factory=list)  # stylize.StylizeResult, in the order finished
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (input, one-line reason)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (input, reason)

    def summary(self) -> str:
        return f"{len(self.done)} done, {len(self.failed)} failed, {len(self.skipped)} skipped"


def one_line(exc: BaseException) -> str:
    """An error as one line: its message, or its type and message when it was unexpected."""
    reason = str(exc) if isinstance(exc, RtstyleError) else f"unexpected {type(exc).__name__}: {exc}"
    return " ".join(reason.split())
