"""CLI conventions: --version, -h, choices in --help, underscore spellings accepted but hidden."""

import sys

import pytest
from typer.testing import CliRunner

from myllm import __version__
from myllm.cli import UNDERSCORE_SPELLINGS, app, hyphenate_options, main
from myllm.config.files import parse_toml

COMMANDS = ["train", "generate", "eval", "convert", "plot", "bench", "data"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), prog_name="myllm")


def test_version_names_every_component_without_importing_frameworks():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"myllm {__version__} python ")
    assert " torch " in result.stdout and " mlx " in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_dash_h_is_help_and_no_underscore_spelling_is_shown(command):
    result = invoke(command, "-h")
    assert result.exit_code == 0 and "Usage: myllm" in result.stdout
    for spelling in UNDERSCORE_SPELLINGS:
        assert spelling not in result.stdout


def shown_type(command: str, option: str) -> str:
    """What --help shows as the option's type: its metavar, or the choices of a closed set."""
    import typer.main

    sub = typer.main.get_command(app).commands[command]
    context = sub.make_context(command, ["--help"], resilient_parsing=True)
    parameter = {p.name: p for p in sub.params}[option]
    return parameter.metavar or parameter.display_type(context)


DEVICES = "<auto|cpu|cuda|mps|gpu>"
BACKENDS = "<torch|mlx>"


@pytest.mark.parametrize(
    ("command", "option", "choices"),
    [
        ("train", "backend", BACKENDS),
        ("train", "device", DEVICES),
        ("generate", "backend", BACKENDS),
        ("generate", "device", DEVICES),
        ("eval", "backend", BACKENDS),
        ("eval", "split", "<val|train|all>"),
        ("eval", "device", DEVICES),
        ("convert", "to", "<myllm|nanogpt|hf|gguf>"),
        ("plot", "metric", "<loss|lr|tokens_per_second>"),
        ("bench", "config", "<tiny|baby|default|FILE>"),
        ("bench", "device", DEVICES),
    ],
)
def test_enumerated_options_show_their_choices(command, option, choices):
    assert shown_type(command, option) == choices


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--backend", "jax", "--print-config"], "unknown backend 'jax': use one of"),
        (
            ["convert", "a.pt", "b.pt", "--to", "onnx"],
            "unknown --to 'onnx': use myllm, nanogpt, hf, gguf",
        ),
        (["plot", ".", "--metric", "speed"], "unknown metric 'speed'"),
    ],
)
def test_a_value_outside_the_choices_is_one_clear_error(monkeypatch, capsys, args, message):
    monkeypatch.setattr(sys, "argv", ["myllm", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_choices_complete_in_the_shell():
    import typer.main

    sub = typer.main.get_command(app).commands["train"]
    backend = {p.name: p for p in sub.params}["backend"]
    context = sub.make_context("train", [], resilient_parsing=True)
    assert [item.value for item in backend.shell_complete(context, "m")] == ["mlx"]


def test_every_option_has_help_text():
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", {}).values() or [command]
        for sub in subcommands:
            for parameter in sub.params:
                assert parameter.help, f"{name} {parameter.name} has no help text"


def test_underscore_spellings_are_translated(monkeypatch, capsys):
    assert hyphenate_options(["--batch_size", "8", "--max_steps=3", "--data", "a_b.txt"]) == [
        "--batch-size", "8", "--max-steps=3", "--data", "a_b.txt",
    ]  # fmt: skip
    argv = ["myllm", "train", "--batch_size", "8", "--d_model=64", "--print-config"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    printed = parse_toml(capsys.readouterr().out)
    assert printed["batch_size"] == 8 and printed["d_model"] == 64


def test_completion_is_on():
    assert "--install-completion" in invoke("--help").stdout
