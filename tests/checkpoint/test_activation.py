"""--activation is recorded in both checkpoint formats; a checkpoint written before the setting
existed (no `activation` in its model config) reads as the exact GELU it was trained with."""

from __future__ import annotations

import json

import torch
from safetensors.numpy import load_file, safe_open, save_file

from myllm.checkpoint.io import read_checkpoint
from tests.interop.models import write_model


def test_the_activation_is_recorded_and_an_old_checkpoint_reads_as_gelu(tmp_path):
    for backend in ("torch", "mlx"):
        path = write_model(tmp_path / backend, backend=backend, activation="gelu_tanh")
        assert read_checkpoint(path).model_config.activation == "gelu_tanh"
        if backend == "torch":
            payload = torch.load(path, weights_only=True)
            del payload["model_config"]["activation"]
            torch.save(payload, path)
        else:
            with safe_open(str(path), "np") as handle:
                meta = json.loads(handle.metadata()["myllm"])
            del meta["model_config"]["activation"]
            save_file(load_file(path), str(path), metadata={"myllm": json.dumps(meta)})
        assert read_checkpoint(path).model_config.activation == "gelu"
