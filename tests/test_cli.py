"""The command line as a whole: every subcommand is listed, and building the parser (``--help``,
usage errors) imports no torch, so it answers at once."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rtstyle import choices
from rtstyle.cli import COMMANDS, all_parsers, build_parser


def test_building_the_parser_imports_no_torch():
    code = "import sys, rtstyle.cli as c; c.build_parser(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'cv2', 'av')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_every_command_is_registered(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in COMMANDS)


def test_parser_choices_match_the_modules_that_own_them():
    from rtstyle.benchmarks.config import ARCHS
    from rtstyle.engine import BACKENDS

    assert choices.BACKEND_NAMES == tuple(BACKENDS)
    assert choices.BENCH_ARCHS == tuple(ARCHS)


TRAIN_REQUIRED = {
    "style": ["--style", "s.jpg", "--data", "d"], "sr": ["--data", "d"], "adain": ["--styles", "st", "--data", "d"],
    "stylebank": ["--style", "s.jpg", "--data", "d"], "texture": ["--style", "s.jpg", "--synthesis"],
}


@pytest.mark.parametrize("task", sorted(TRAIN_REQUIRED))
def test_train_flag_defaults_are_the_trainer_configs_defaults(task):
    # The parser reads its defaults from the config dataclasses: every flag left out gives the config's own
    # default, so building the config from the flags equals building it from the required values alone.
    from rtstyle import trainconfig as configs

    config = {"style": configs.StyleTrainConfig, "sr": configs.SRTrainConfig, "adain": configs.AdaINTrainConfig,
              "stylebank": configs.StyleBankTrainConfig, "texture": configs.TextureTrainConfig}[task]
    args = vars(build_parser().parse_args(["train", task, *TRAIN_REQUIRED[task], "--out", "o.safetensors"]))
    fields = {f.name: f for f in dataclasses.fields(config)}
    # --preset picks a recipe (rtstyle.presets) for the other flags, and -n is the output rule's flag (the
    # default made explicit for training): neither is a config field
    cli_only = ("func", "command", "task", "preset", "never_overwrite")
    flags = {k: v for k, v in args.items() if k not in cli_only and not k.startswith("_")}
    assert set(flags) <= set(fields), set(flags) - set(fields)  # every flag is a config field
    given = {"data", "out", "style", "styles", "synthesis"}
    for name, value in flags.items():
        if name in given:
            continue
        default = fields[name].default
        assert value == ([] if default == () else default), (name, value, default)


def test_train_defaults_live_in_the_configs_alone():
    # No literal default in the command module: it names fields, the configs hold the values.
    text = (Path(__file__).resolve().parents[1] / "rtstyle" / "commands" / "train.py").read_text()
    assert "default=" not in text.replace("default=[]", "").replace('"default" not in kwargs', "")


@pytest.mark.parametrize("argv, shown", [
    (["train", "style"], ["(default: 40000)", "(default: 400)", "(default: johnson)"]),
    (["train", "adain"], ["(default: 20000)", "(default: 0.0001)"]),
    (["train", "sr"], ["(default: 288)", "(default: batch)"]),
    (["stylize"], ["(default: auto)"]),
])
def test_help_shows_defaults(argv, shown, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(s in text for s in shown), text


def test_train_flag_defaults_match_the_trainer_configs():
    from rtstyle.trainconfig import StabilityConfig

    args = build_parser().parse_args(["train", "style", "--style", "s.jpg", "--data", "d", "--out", "o.safetensors"])
    assert args.stability_weight == StabilityConfig.weight > 0
    texture = build_parser().parse_args(["train", "texture", "--style", "s.jpg", "--out", "o.safetensors"])
    assert "stability_weight" not in vars(texture)  # texture nets train without it (TextureTrainConfig: 0)


def test_closed_pipe_is_quiet():
    # `rtstyle models --json | head -1`: the reader is gone before the output is written; the
    # command must end quietly, not with "unexpected BrokenPipeError". Closing the read end first
    # makes every write fail, so the test does not depend on pipe buffer sizes.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "rtstyle", "models", "--json"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def _option_prefixes(parser):
    """Every prefix of every option string of ``parser`` that is not itself one of its options
    (``-s`` of ``-ss``, ``--star`` of ``--start``)."""
    options = set(parser._option_string_actions)
    for option in options:
        for end in range(2, len(option)):
            if option[:end] not in options and option[:end] not in ("-", "--"):
                yield option[:end]


def test_no_option_can_be_abbreviated():
    # argparse would read `-s 4` as `-ss 4` and `--star 10` as `--start 10` (issue 29): a prefix
    # of an option is an unknown flag in every parser, sub-commands included.
    parsers = all_parsers(build_parser())
    assert len(parsers) > 20 and all(p.allow_abbrev is False for p in parsers)
    taken = [(p.prog, prefix) for p in parsers for prefix in _option_prefixes(p) if p._get_option_tuples(prefix)]
    assert not taken, taken[:10]


@pytest.mark.parametrize("flag", [["-s", "4"], ["--star", "10"], ["--dur", "2"], ["-t"]])
def test_a_prefix_of_an_option_is_an_unknown_flag(flag, tmp_path, capsys):
    from rtstyle.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["stylize", str(tmp_path / "in.mp4"), *flag, "-o", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and ("unrecognized arguments" in err or "expected one argument" in err), err
    assert not (tmp_path / "o.mp4").exists()


def test_short_options_still_take_attached_values():
    args = build_parser().parse_args(["stylize", "in.mp4", "-t2", "-ss", "1"])
    assert args.duration == 2.0 and args.start == 1.0


def test_scripts_never_abbreviate_options():
    """The benchmark and study scripts' parsers: the project's ArgumentParser, or allow_abbrev=False."""
    import ast

    from tests.test_layers import source_modules

    plain = []
    for module, path in source_modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "ArgumentParser" \
                    and not any(k.arg == "allow_abbrev" and getattr(k.value, "value", None) is False for k in node.keywords):
                plain.append(f"{module}:{node.lineno}")
    assert not plain, f"argparse.ArgumentParser without allow_abbrev=False (use rtstyle.argparsing): {plain}"
    from rtstyle.benchmarks import encoder_presets

    with pytest.raises(SystemExit) as exc:
        encoder_presets.main(["--sourc", "clip.mp4"])
    assert exc.value.code == 2
