"""`--config FILE` (TOML or JSON): every field settable, flags win, unknown keys named."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from myllm.cli import app
from myllm.config.files import (
    bench_values,
    load_config_file,
    parse_toml,
    render_toml,
    resolved_settings,
    settable_fields,
)
from myllm.config.settings import TrainConfig
from myllm.errors import UserError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def print_config(*args: str) -> str:
    result = CliRunner().invoke(app, ["train", *args, "--print-config"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_train_and_model_field_is_settable(tmp_path):
    train_types, model_types = settable_fields()
    values = {
        "data": "text.txt", "checkpoint_dir": "runs/x", "epochs": 3, "max_steps": 7,
        "batch_size": 5, "block_size": 24, "lr": 2e-3, "min_lr_ratio": 0.2, "warmup_steps": 2,
        "beta1": 0.8, "beta2": 0.9, "eps": 1e-7, "weight_decay": 0.01, "grad_clip": 0.5,
        "val_split": 0.2, "seed": 9, "eval_interval": 4, "eval_iters": 6, "log_interval": 2,
        "sample_every_epochs": 3, "device": "cpu", "d_model": 48, "n_heads": 3, "n_layers": 1,
        "d_ff": 96, "dropout": 0.05, "backend": "mlx", "save_interval": 50,
        "save_minutes": 5.0, "tf32": True, "tokenizer": "byte", "cache_dir": "cache",
        "dtype": "float32", "compile": "off", "grad_accum_steps": 2, "activation": "gelu_tanh",
    }  # fmt: skip
    assert set(values) == set(train_types) | set(model_types) | {"backend"}
    path = tmp_path / "run.toml"
    path.write_text(render_toml(values))
    assert parse_toml(print_config("--config", str(path))) == values


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_flags_override_the_file_and_output_keeps_its_format(tmp_path, fmt):
    path = tmp_path / f"run.{fmt}"
    values = {"lr": 0.002, "batch_size": 12, "d_model": 64, "n_heads": 4}
    path.write_text(render_toml(values) if fmt == "toml" else json.dumps(values))
    text = print_config("--config", str(path), "--lr", "0.005", "--n-heads", "8")
    printed = parse_toml(text) if fmt == "toml" else json.loads(text)
    assert printed["lr"] == 0.005 and printed["n_heads"] == 8  # the flags
    assert printed["batch_size"] == 12 and printed["d_model"] == 64  # the file
    assert printed["epochs"] == TrainConfig.epochs  # the defaults


def test_printed_config_reproduces_the_run(tmp_path):
    """--print-config, fed back as --config, resolves to the same settings (TOML has no null)."""
    first = print_config("--config", str(CONFIGS / "nanogpt-cpu.toml"), "--seed", "3")
    path = tmp_path / "printed.toml"
    path.write_text(first)
    assert print_config("--config", str(path)) == first
    assert "# eval_interval" not in first and "# max_steps = (not set)" not in first


def test_shipped_configs(tmp_path):
    reference = parse_toml(print_config("--config", str(CONFIGS / "reference.toml")))
    assert reference == parse_toml(print_config())  # the reference run is the defaults
    budget = load_config_file(CONFIGS / "nanogpt-cpu.toml")
    assert budget.train == {"block_size": 64, "batch_size": 12, "lr": 1e-3, "beta2": 0.99,
                            "warmup_steps": 100, "max_steps": 2000, "eval_interval": 250,
                            "eval_iters": 200}  # fmt: skip
    assert budget.model == {"n_layers": 4, "n_heads": 4, "d_model": 128, "dropout": 0.0}
    assert bench_values(CONFIGS / "nanogpt-cpu.toml") == {
        "d_model": 128, "n_layers": 4, "n_heads": 4, "block_size": 64, "batch_size": 12
    }  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("lr = 1e-3\nlearning_rate = 1\nfoo = 2\n", "unknown key(s) foo, learning_rate"),
        ('batch_size = "big"\n', "batch_size must be an integer, got 'big'"),
        ("max_steps = 1.5\n", "max_steps must be an integer, got 1.5"),
        ("lr = \n", "could not be parsed"),
        ("[model]\nd_model = 64\n", "unknown key(s) model"),
    ],
)
def test_bad_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config_file(path)
    result = CliRunner().invoke(app, ["train", "--config", str(path), "--print-config"])
    assert result.exit_code != 0


def test_wrong_suffix_and_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"must end in \.toml or \.json"):
        load_config_file(tmp_path / "run.yaml")
    with pytest.raises(UserError, match="not found"):
        load_config_file(tmp_path / "run.toml")


def test_toml_writer_round_trips_awkward_values():
    values = {"data": 'dir with "quotes"/ünï.txt', "eps": 1e-08, "lr": 3e-4, "seed": 0,
              "max_steps": None, "dropout": 0.0}  # fmt: skip
    parsed = parse_toml(render_toml(values))
    assert parsed == {name: value for name, value in values.items() if value is not None}


def test_resolved_settings_fill_model_defaults():
    settings = resolved_settings("torch", TrainConfig(), {"d_model": 64})
    assert settings["d_model"] == 64 and settings["n_layers"] == 6 and settings["d_ff"] is None


def test_bench_takes_a_config_file_and_flags_win(monkeypatch):
    import myllm.bench

    seen = {}

    def fake_run_matrix(cells, progress):
        (seen["settings"],) = cells
        raise UserError("stop here: only the settings matter")

    monkeypatch.setattr(myllm.bench, "run_matrix", fake_run_matrix)
    config = str(CONFIGS / "nanogpt-cpu.toml")
    CliRunner().invoke(app, ["bench", "--config", config, "--batch-size", "4"])
    settings = seen["settings"]
    assert (settings.config, settings.d_model, settings.block_size) == ("default", 128, 64)
    assert settings.batch_size == 4


def test_a_run_json_is_a_config_that_reproduces_its_run(tmp_path):
    """run.json's nested configs read as flat settings: the same resolved settings, and a seeded
    float32 run from it logs the same losses."""
    from tests.helpers import losses_by_step, sample_text

    data = tmp_path / "input.txt"
    data.write_text(sample_text(3000), encoding="utf-8")
    flags = ["--backend", "torch", "--data", str(data), "--d-model", "32", "--n-heads", "4",
             "--n-layers", "2", "--block-size", "16", "--batch-size", "8", "--device", "cpu",
             "--seed", "5", "--max-steps", "10", "--log-interval", "5"]  # fmt: skip
    first = CliRunner().invoke(app, ["train", *flags, "--checkpoint-dir", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    recorded = [
        "--config",
        str(tmp_path / "a" / "run.json"),
        "--checkpoint-dir",
        str(tmp_path / "b"),
    ]
    again = CliRunner().invoke(app, ["train", *recorded])
    assert again.exit_code == 0, again.output
    assert losses_by_step(tmp_path / "b") == losses_by_step(tmp_path / "a")
    runs = [json.loads((tmp_path / name / "run.json").read_text()) for name in "ab"]
    assert runs[0]["model_config"] == runs[1]["model_config"]
    assert runs[0]["backend"] == runs[1]["backend"] == "torch"
    train_configs = [{**run["train_config"], "checkpoint_dir": None} for run in runs]
    assert train_configs[0] == train_configs[1]
