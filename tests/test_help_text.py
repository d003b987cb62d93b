"""Every ``--help`` says what the user gets by default, in plain text (issue 16)."""

from __future__ import annotations

import argparse

import pytest

from rtstyle.cli import all_parsers, build_parser, main, plain_text, show_default

PARSERS = all_parsers(build_parser())


def _option_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    return " ".join(parser._get_formatter()._format_action(action).split())


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.prog)
def test_every_default_is_shown(parser):
    missing = []
    for action in parser._actions:
        default = show_default(action)
        if default is None:
            continue
        help_text = _option_help(parser, action)
        first = default.split()[0]
        if not any(form in help_text.lower() for form in (f"default: {first}", f"default {first}",
                                                           f"{first} (default", f"{first}, default")):
            missing.append(f"{'/'.join(action.option_strings) or action.dest} (default {default}): {help_text!r}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.prog)
def test_descriptions_carry_no_markup(parser):
    text = parser.format_help()
    assert "``" not in text and ":func:`" not in text and ":class:`" not in text


def test_plain_text_strips_rst():
    assert plain_text("run ``rtstyle models`` or :func:`progress`") == "run rtstyle models or progress"


def test_defaults_are_added_to_help_that_does_not_name_them():
    sub = argparse.ArgumentParser(formatter_class=PARSERS[0].formatter_class)
    sub.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    sub.add_argument("--seed", type=int, default=42)
    sub.add_argument("--flag", action="store_true", help="a flag")
    text = " ".join(sub.format_help().split())
    assert "learning rate (default: 0.001)" in text
    assert "--seed SEED default: 42" in text
    assert "a flag (default" not in text


def test_unknown_option_points_at_the_sub_command_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["models", "--bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rtstyle models: error: unrecognized arguments: --bogus")
    assert err.endswith("(see rtstyle models --help)")


def test_unknown_option_of_a_nested_command_points_at_its_help(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "temporal", "clip.mp4", "--model", "m", "--bogus"])
    assert "(see rtstyle eval temporal --help)" in capsys.readouterr().err


def test_parsing_adds_nothing_to_the_arguments():
    # Commands pass vars(args) on to config dataclasses: no helper attribute may ride along.
    args = build_parser().parse_args(["train", "stylebank", "--style", "a.jpg", "--data", "d", "--out", "b.safetensors"])
    assert not [k for k in vars(args) if k.startswith("_")]
