"""Bad input to training: exit 2, one line, nothing run, nothing written."""

from __future__ import annotations

import json

import pytest

from myllm.errors import UserError
from myllm.train.setup import run_training
from tests.helpers import (
    DROPOUT_MODEL,
    RunsCode,
    assert_user_error,
    constant_checkpoint,
    run_cli,
    sample_text,
    two_epoch_config,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one torch thread is fastest


def test_an_unusable_checkpoint_dir_is_a_user_error(backend, small_text, tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    config = two_epoch_config(small_text, tmp_path / "a_file" / "run")
    with pytest.raises(UserError, match="cannot create the checkpoint directory") as refused:
        run_training(backend.name, config, DROPOUT_MODEL)
    assert refused.value.exit_code == 2


def test_bad_resume_inputs_exit_2(tmp_path):
    import torch
    from safetensors.numpy import save_file

    marker = tmp_path / "pwned"
    torch.save({"model_state_dict": RunsCode(marker)}, tmp_path / "evil.pt", pickle_protocol=2)
    weights = constant_checkpoint(1).weights
    save_file(weights, str(tmp_path / "no_metadata.safetensors"))
    meta = {"model_config": constant_checkpoint(1).model_config.to_dict(), "training": {"stepz": 1}}
    save_file(weights, str(tmp_path / "garbled.safetensors"), {"myllm": json.dumps(meta)})
    data = tmp_path / "input.txt"
    data.write_text(sample_text(2000), encoding="utf-8")
    cases = [
        (["--resume", tmp_path / "evil.pt"], ("refused", "system")),
        (["--resume", tmp_path / "no_metadata.safetensors"], ("corrupt",)),
        (["--resume", tmp_path / "garbled.safetensors"], ("corrupt",)),
    ]
    for args, fragments in cases:
        result = run_cli("train", "--data", data, "--max-steps", 1, "--block-size", 4, *args)
        assert_user_error(result, *fragments)
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["evil.pt", "no_metadata.safetensors", "garbled.safetensors", "input.txt"]
    )  # fmt: skip
