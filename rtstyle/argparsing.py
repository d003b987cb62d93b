"""``ArgumentParser``: argparse without abbreviations, for the CLI and every script.

argparse reads a prefix of an option as the option (``--star`` as ``--start``, and ``-s 4`` as
``-ss 4``), so a mistyped or future flag silently becomes another one. Here an option must be
spelled in full; anything else is an unknown flag, which is an error. ``allow_abbrev=False``
alone is not enough on the Pythons we support: on 3.10 and 3.11 it stops the prefix matching of
``--long`` options only, not of single-dash ones (``-s`` -> ``-ss``; CPython gh-104860, fixed in
later releases), so that is filtered here too. A short option with its value attached (``-t2``)
still works. Sub-command parsers inherit the class (argparse builds them with the parent's class).
"""

from __future__ import annotations

import argparse


class ArgumentParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def _get_option_tuples(self, option_string: str) -> list:
        tuples = super()._get_option_tuples(option_string)
        if self.allow_abbrev:
            return tuples
        # Only "-x" with its value attached ("-xVALUE") remains; no prefix of a longer option.
        return [t for t in tuples if t[1] == option_string[:2] and not option_string.startswith("--")]
