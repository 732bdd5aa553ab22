"""Model presets: parameter counts match the built model, flags override the preset."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from myllm import cli
from myllm.checkpoint.state import parameter_count
from myllm.config.presets import PRESETS, get_preset
from myllm.errors import UserError
from myllm.train.memory import estimate_step_memory


def test_parameter_count_matches_the_torch_model():
    from myllm_torch.model import GPTModel, count_parameters

    config = get_preset("reference").model_config(vocab_size=65)
    assert parameter_count(config) == count_parameters(GPTModel(config)) == 10_714_752


def test_presets_grow_up_to_gpt2_small_and_unknown_names_fail():
    gpt2 = PRESETS["gpt2-small"]
    assert (gpt2.n_layers, gpt2.d_model, gpt2.block_size) == (12, 768, 1024)
    sizes = [
        estimate_step_memory(p.model_config(65), p.batch_size, p.block_size).total
        for p in PRESETS.values()
    ]
    assert sizes == sorted(sizes)
    with pytest.raises(UserError, match="unknown preset 'huge'"):
        get_preset("huge")


def test_flags_override_the_preset(monkeypatch, tmp_path):
    seen = {}

    def fake_run_training(backend, train_config, model_settings, resume, overwrite=False):
        seen.update(train_config=train_config, model_settings=model_settings)
        return type("Result", (), {"exit_code": 0})()

    monkeypatch.setattr("myllm.train.setup.run_training", fake_run_training)
    args = ["train", "--preset", "medium", "--n-layers", "2", "--batch-size", "4",
            "--data", str(tmp_path / "x.txt")]  # fmt: skip
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert seen["model_settings"].given() == {"d_model": 512, "n_heads": 8, "n_layers": 2}
    assert seen["train_config"].block_size == 256 and seen["train_config"].batch_size == 4
