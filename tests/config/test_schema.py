"""The whole settings schema, driven from its declarations: every setting, on the command line
and in a --config file, refuses a value below its range, above it and of the wrong type with one
line naming it (exit 2). In-process through `main` (the real entry point, no subprocess)."""

from __future__ import annotations

import json
import math
import sys

import pytest

from myllm.cli import main
from myllm.cli.train import flag_settings
from myllm.config.commands import EvalOptions, GenerateOptions
from myllm.config.files import settable_fields
from myllm.config.schema import Setting, base_type, flag_of


def hostile_values(annotation, spec: Setting) -> list[object]:
    """Values the declaration must refuse: below and above its range, the wrong type."""
    kind = base_type(annotation)
    if kind is bool:
        return ["yes", 1]
    if kind is str:
        return [123, "not-a-choice" if spec.choices else ""]
    values: list[object] = ["many", True]
    if spec.low is not None:
        values.append(spec.low if spec.open_low else spec.low - 1)
    values.append(math.inf if spec.high is None else spec.high if spec.open_high else spec.high + 1)
    if kind is float:
        values += [math.nan, 1.5 * (spec.high or 1) + 1]
    else:
        values.append(0.5 + (spec.low or 0))  # a float where an integer is declared
    return [v for v in values if not (kind is float and isinstance(v, float) and _inside(spec, v))]


def _inside(spec: Setting, value: float) -> bool:
    from myllm.config.schema import problem

    return problem(float, spec, value) is None


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["myllm", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err.strip()


def toml_value(value: object) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return json.dumps(value)


FILE_CASES = [
    (name, value)
    for fields in settable_fields()
    for name, (annotation, spec) in fields.items()
    for value in hostile_values(annotation, spec)
]
FLAG_CASES = [
    (flag_of(name, spec), name, value)
    for group in flag_settings().values()
    for name, (annotation, spec, _) in group.items()
    for value in hostile_values(annotation, spec)
    if base_type(annotation) is not bool
    and not (base_type(annotation) is str and not isinstance(value, str))  # "123" is a string
]


def test_every_setting_is_driven():
    names = {name for name, _ in FILE_CASES}
    assert {"max_steps", "beta1", "eps", "grad_clip", "min_lr_ratio", "d_ff", "tf32"} <= names
    assert len(FLAG_CASES) > 60


@pytest.mark.parametrize(("name", "value"), FILE_CASES)
def test_config_file_refuses_each_hostile_value(tmp_path, monkeypatch, capsys, name, value):
    config = tmp_path / "bad.toml"
    config.write_text(f"{name} = {toml_value(value)}\n")
    code, message = run_main(
        monkeypatch, capsys, "train", "--config", str(config), "--print-config"
    )
    assert code == 2 and "\n" not in message and "Traceback" not in message, message
    assert name in message and str(config) in message, message


@pytest.mark.parametrize(("flag", "name", "value"), FLAG_CASES)
def test_flag_refuses_each_hostile_value(monkeypatch, capsys, flag, name, value):
    """Our check names the setting and the flag; a value typer cannot parse (`many`, 1.5 for an
    integer) is typer's usage error, also one line naming the flag."""
    code, message = run_main(monkeypatch, capsys, "train", flag, str(value), "--print-config")
    assert code == 2 and "\n" not in message and "Traceback" not in message, message
    assert flag in message, message
    if "Invalid value" not in message:
        assert name in message, message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("beta1 = 1.5", ["beta1", "[0, 1)"]),
        ("eps = nan", ["eps", "(0, 1]"]),
        ("grad_clip = -1", ["grad_clip", "(0, inf)"]),
        ("grad_clip = nan", ["grad_clip", "(0, inf)"]),
        ("min_lr_ratio = 2", ["min_lr_ratio", "[0, 1]"]),
        ("sample_every_epochs = -1", ["sample_every_epochs", "[1, 1e6]"]),
        ("eval_iters = -4", ["eval_iters", "[1, 1e6]"]),
        ("d_ff = 0", ["d_ff", "[1, 2**31]"]),
        ('backend = ""', ["unknown backend ''"]),
        ("max_steps = 18446744073709551616", ["max_steps", "[1, 1e9]"]),
    ],
)
def test_issue_22_hostile_config_values(tmp_path, monkeypatch, capsys, content, words):
    config = tmp_path / "bad.toml"
    config.write_text(content + "\n")
    code, message = run_main(
        monkeypatch, capsys, "train", "--config", str(config), "--print-config"
    )
    assert code == 2 and "\n" not in message, message
    for word in words:
        assert word in message, message


BIG = str(2**64)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--max-steps", BIG], ["max_steps", "--max-steps", "1e9"]),
        (["--eval-iters", BIG], ["eval_iters", "--eval-iters"]),
        (["--epochs", BIG], ["--epochs"]),
        (["--log-interval", BIG], ["--log-interval"]),
        (["--warmup-steps", BIG], ["--warmup-steps"]),
        (["--save-interval", BIG], ["--save-interval"]),
        (["--eval-interval", BIG], ["--eval-interval"]),
        (["--grad-accum-steps", BIG], ["--grad-accum-steps"]),
        (["--grad-accum-steps", "16", "--batch-size", "8"], ["above batch_size 8"]),
        (["--warmup-steps", "50", "--max-steps", "10"], ["longer than the run"]),
        (["--backend", ""], ["unknown backend ''"]),
        (["--checkpoint-dir", ""], ["checkpoint_dir must not be empty"]),
        (["--data", ""], ["data must not be empty"]),
        (["--d-model", BIG], ["--d-model"]),
        (["--seed", BIG], ["--seed", "2**63 - 1"]),
    ],
)
def test_issue_22_hostile_flags(monkeypatch, capsys, args, words):
    code, message = run_main(monkeypatch, capsys, "train", *args, "--print-config")
    assert code == 2 and "\n" not in message, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("cls", [GenerateOptions, EvalOptions])
def test_generate_and_eval_options_refuse_out_of_range(tmp_path, monkeypatch, capsys, cls):
    from myllm.config.schema import declared

    command = "generate" if cls is GenerateOptions else "eval"
    for name, (annotation, spec, _) in declared(cls).items():
        for value in hostile_values(annotation, spec):
            if isinstance(value, (str, bool)):
                continue  # typer refuses those itself
            flag = flag_of(name, spec)
            args = [command, "--checkpoint", str(tmp_path / "none.pt"), flag, str(value)]
            code, message = run_main(monkeypatch, capsys, *args)
            assert code == 2 and "Traceback" not in message, (flag, value, message)
            assert flag in message or "Invalid value" in message, (flag, value, message)


def test_old_spellings_and_hyphenated_flags(monkeypatch, capsys):
    code, _ = run_main(monkeypatch, capsys, "train", "--batch_size", "8", "--grad_accum_steps",
                       "2", "--save_minutes", "0", "--print-config")  # fmt: skip
    assert code in (0, None)


def test_print_config_round_trips(tmp_path, monkeypatch, capsys):
    args = ["train", "--d-model", "64", "--n-heads", "4", "--max-steps", "7", "--print-config"]
    monkeypatch.setattr(sys, "argv", ["myllm", *args])
    with pytest.raises(SystemExit):
        main()
    printed = capsys.readouterr().out
    config = tmp_path / "printed.toml"
    config.write_text(printed)
    monkeypatch.setattr(sys, "argv", ["myllm", "train", "--config", str(config), "--print-config"])
    with pytest.raises(SystemExit):
        main()
    assert capsys.readouterr().out == printed
    assert "# d_ff = (not set)" in printed


OLD_STORED = {"grad_clip": -1.0, "warmup_steps": 500, "max_steps": 30, "batch_size": 8,
              "grad_accum_steps": 16, "lr": 1e-3, "seed": 5}  # fmt: skip


def test_an_old_checkpoints_looser_stored_config_still_reads_for_eval():
    from myllm.config.settings import TrainConfig

    config = TrainConfig.from_record(OLD_STORED)
    assert (config.lr, config.seed, config.batch_size) == (1e-3, 5, 8)  # what eval relies on
    assert config.grad_clip == TrainConfig.grad_clip


def test_resuming_an_old_stored_value_is_refused_naming_the_checkpoint(tmp_path):
    from myllm.errors import UserError
    from myllm.train.resume import resumed_train_config

    with pytest.raises(UserError, match=r"stored in checkpoint .*grad_clip"):
        resumed_train_config(OLD_STORED, {"max_steps": 600}, tmp_path / "old.pt")
