"""Config validation and the learning-rate schedule against torch's CosineAnnealingLR."""

import pytest
import torch

from myllm.config.settings import ModelConfig, TrainConfig
from myllm.errors import UserError
from myllm.train.schedule import CosineSchedule


def test_model_config_defaults_are_the_reference():
    config = ModelConfig(vocab_size=65)
    assert (config.d_model, config.n_heads, config.n_layers, config.max_seq_len) == (384, 6, 6, 128)
    assert config.d_ff == 4 * 384 and config.dropout == 0.1
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_train_config_json_round_trip():
    config = TrainConfig(max_steps=10, eval_interval=5)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert (config.epochs, config.batch_size, config.lr, config.block_size) == (50, 64, 3e-4, 128)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"d_model": 30, "n_heads": 4}, "not divisible by n_heads"),
        ({"n_layers": 0}, "n_layers must be a positive integer"),
        ({"dropout": 1.5}, "dropout"),
    ],
)
def test_model_config_rejects_bad_values(values, message):
    with pytest.raises(UserError, match=message):
        ModelConfig(vocab_size=65, **values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"val_split": 1.0}, "val_split"),
        ({"lr": -1.0}, "lr"),
        ({"max_steps": -5}, "max_steps"),
    ],
)
def test_train_config_rejects_bad_values(values, message):
    with pytest.raises(UserError, match=message):
        TrainConfig(**values)


def test_schedule_without_warmup_is_torch_cosine_annealing():
    """float64 closed form vs torch's recursive CosineAnnealingLR: rel 1e-6."""
    total, lr = 50, 3e-4
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=lr)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=0.1 * lr)
    schedule = CosineSchedule(lr, total)
    for step in range(total):
        assert schedule.lr_at(step) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-6)
        optimizer.step()
        reference.step()


def test_warmup_is_linear_then_cosine_from_base():
    schedule = CosineSchedule(1e-3, total_steps=110, warmup_steps=10)
    assert schedule.lr_at(0) == pytest.approx(1e-4)
    assert schedule.lr_at(9) == pytest.approx(1e-3)
    assert schedule.lr_at(10) == pytest.approx(1e-3)
    assert schedule.lr_at(110) == pytest.approx(1e-4)
