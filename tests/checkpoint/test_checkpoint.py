"""Checkpoint formats: bit-exact round trips, validation, refusal of code-running pickles."""

import numpy as np
import pytest
import torch

from myllm.checkpoint.io import read_checkpoint, write_checkpoint
from myllm.checkpoint.state import (
    Checkpoint,
    LossScaleState,
    OptimizerState,
    TrainingState,
    parameter_shapes,
)
from myllm.errors import UserError
from tests.helpers import RunsCode, tiny_model_config


def random_checkpoint(seed: int = 0) -> Checkpoint:
    config = tiny_model_config()
    rng = np.random.default_rng(seed)
    shapes = parameter_shapes(config)

    def tensors():
        return {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}

    return Checkpoint(
        model_config=config,
        weights=tensors(),
        training=TrainingState(step=42, epoch=3, loss=1.25, best_val_loss=1.5),
        train_config={"lr": 1e-3, "beta1": 0.9, "beta2": 0.99, "seed": 7},
        optimizer=OptimizerState(step=42, exp_avg=tensors(), exp_avg_sq=tensors()),
        rng={"torch": rng.integers(0, 255, size=5056, dtype=np.uint8)},
        loss_scale=LossScaleState(scale=2048.0, good_steps=17, skipped_steps=3),
    )


def assert_same(first: Checkpoint, second: Checkpoint) -> None:
    """Every tensor equal bit for bit (float32) and every number equal."""
    assert first.model_config == second.model_config
    assert first.training == second.training
    assert first.train_config == second.train_config
    assert first.loss_scale == second.loss_scale
    for name, array in first.weights.items():
        np.testing.assert_array_equal(array, second.weights[name], strict=True)
    assert first.optimizer.step == second.optimizer.step
    for name in first.weights:
        np.testing.assert_array_equal(first.optimizer.exp_avg[name], second.optimizer.exp_avg[name])
        np.testing.assert_array_equal(
            first.optimizer.exp_avg_sq[name], second.optimizer.exp_avg_sq[name]
        )
    for name, state in first.rng.items():
        np.testing.assert_array_equal(state, second.rng[name])


@pytest.mark.parametrize(
    "chain", [(".pt", ".safetensors", ".pt"), (".safetensors", ".pt", ".safetensors")]
)
def test_round_trips_are_bit_exact(tmp_path, chain):
    original = random_checkpoint()
    current = original
    for index, suffix in enumerate(chain):
        path = tmp_path / f"step{index}{suffix}"
        write_checkpoint(path, current)
        current = read_checkpoint(path)
        assert_same(original, current)


def test_pt_file_has_the_reference_layout_and_ties_lm_head(tmp_path):
    write_checkpoint(tmp_path / "c.pt", random_checkpoint())
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    assert {"epoch", "model_state_dict", "optimizer_state_dict", "scheduler_state_dict", "loss",
            "model_config"} <= payload.keys()  # fmt: skip
    state = payload["model_state_dict"]
    assert state["lm_head.weight"].data_ptr() == state["token_embedding.weight"].data_ptr()


def test_safetensors_stores_the_tied_embedding_once(tmp_path):
    from safetensors import safe_open

    write_checkpoint(tmp_path / "c.safetensors", random_checkpoint())
    with safe_open(str(tmp_path / "c.safetensors"), framework="numpy") as handle:
        names = list(handle.keys())
    assert "lm_head.weight" not in names and "token_embedding.weight" in names
    assert "optimizer.exp_avg.token_embedding.weight" in names


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_and_garbage_files_are_refused(tmp_path, suffix):
    path = tmp_path / f"c{suffix}"
    write_checkpoint(path, random_checkpoint())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="could not be read"):
        read_checkpoint(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="could not be read"):
        read_checkpoint(path)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize(
    "loss_scale",
    [
        LossScaleState(scale=float("nan"), good_steps=0, skipped_steps=0),
        LossScaleState(scale=0.0, good_steps=0, skipped_steps=0),
        LossScaleState(scale=1.0, good_steps=-1, skipped_steps=0),
        LossScaleState(scale=1.0, good_steps=0, skipped_steps="3"),
    ],
)
def test_a_mistyped_loss_scale_is_a_corrupt_checkpoint(tmp_path, suffix, loss_scale):
    path = tmp_path / f"c{suffix}"
    checkpoint = random_checkpoint()
    checkpoint.loss_scale = loss_scale
    write_checkpoint(path, checkpoint)
    with pytest.raises(UserError, match="could not be read"):
        read_checkpoint(path)


def test_wrong_shapes_are_refused(tmp_path):
    checkpoint = random_checkpoint()
    checkpoint.weights["ln_final.weight"] = np.zeros(7, dtype=np.float32)
    with pytest.raises(UserError, match=r"ln_final\.weight"):
        write_checkpoint(tmp_path / "c.safetensors", checkpoint)


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="unknown checkpoint format"):
        read_checkpoint(tmp_path / "model.bin")
    with pytest.raises(UserError, match="not found"):
        read_checkpoint(tmp_path / "missing.pt")


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model_state_dict": RunsCode(marker)}, path, pickle_protocol=2)
    with pytest.raises(UserError, match="refused"):
        read_checkpoint(path)
    assert not marker.exists()
    with open(path, "rb") as handle:  # the file really would run code under full pickle
        assert b"system" in handle.read()
