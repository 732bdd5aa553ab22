"""Safe loading: a damaged checkpoint of either format is refused in one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from myllm.checkpoint.io import read_checkpoint, write_checkpoint
from myllm.errors import UserError
from tests.helpers import ONE_THREAD_ENV, constant_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one torch thread is fastest


def damage(meta: dict, tensors: dict, case: str) -> tuple[dict | None, dict]:
    """(safetensors metadata, tensors) of a checkpoint damaged as `case` says."""
    moment = "optimizer.exp_avg.ln_final.weight"

    def myllm(**changes) -> dict:
        return {"myllm": json.dumps({**meta, **changes})}

    cases = {
        "no metadata": (None, tensors),
        "no myllm entry": ({"other": "1"}, tensors),
        "metadata not JSON": ({"myllm": "{not json"}, tensors),
        "metadata not an object": ({"myllm": "[1, 2]"}, tensors),
        "model_config missing": (myllm(model_config=None), tensors),
        "model_config invalid": (myllm(model_config={"vocab_size": "x"}), tensors),
        "training unknown field": (myllm(training={"stepz": 1}), tensors),
        "training not an object": (myllm(training="x"), tensors),
        "optimizer step missing": (myllm(optimizer={}), tensors),
        "optimizer step not a number": (myllm(optimizer={"step": "x"}), tensors),
        "train_config not an object": (myllm(train_config=[1]), tensors),
        "optimizer moment wrong shape": (myllm(), {**tensors, moment: np.ones(3, np.float32)}),
        "optimizer moment wrong dtype": (
            myllm(), {**tensors, moment: tensors[moment].astype(np.float16)}
        ),
        "optimizer moment missing": (myllm(), {k: v for k, v in tensors.items() if k != moment}),
        "optimizer moment unexpected": (
            myllm(), {**tensors, "optimizer.exp_avg.extra": np.ones(3, np.float32)}
        ),
        "optimizer tensors missing": (
            myllm(), {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
        ),
        "weight wrong dtype": (
            myllm(), {**tensors, "ln_final.weight": tensors["ln_final.weight"].astype(np.float64)}
        ),
        "rng wrong dtype": (myllm(), {**tensors, "rng.torch": np.ones(3, np.float32)}),
    }  # fmt: skip
    return cases[case]


SAFETENSORS_DAMAGE = [
    "no metadata", "no myllm entry", "metadata not JSON", "metadata not an object",
    "model_config missing", "model_config invalid", "training unknown field",
    "training not an object", "optimizer step missing", "optimizer step not a number",
    "train_config not an object", "optimizer moment wrong shape", "optimizer moment wrong dtype",
    "optimizer moment missing", "optimizer moment unexpected", "optimizer tensors missing",
    "weight wrong dtype", "rng wrong dtype",
]  # fmt: skip


@pytest.mark.parametrize("case", SAFETENSORS_DAMAGE)
def test_damaged_safetensors_headers_are_refused_with_one_line(tmp_path, case):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    good = tmp_path / "good.safetensors"
    write_checkpoint(good, constant_checkpoint(1))
    with safe_open(str(good), framework="numpy") as handle:
        meta = json.loads(handle.metadata()["myllm"])
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    metadata, tensors = damage(meta, tensors, case)
    damaged = tmp_path / "damaged.safetensors"
    save_file(tensors, str(damaged), metadata=metadata)
    with pytest.raises(UserError) as refused:
        read_checkpoint(damaged)
    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert str(damaged) in message and "corrupt" in message and "\n" not in message


PT_DAMAGE = ["training unknown field", "optimizer moment wrong shape", "model_config invalid",
             "rng wrong dtype", "train_config not an object"]  # fmt: skip


@pytest.mark.parametrize("case", PT_DAMAGE)
def test_damaged_pt_contents_are_refused_with_one_line(tmp_path, case):
    import torch

    good = tmp_path / "good.pt"
    write_checkpoint(good, constant_checkpoint(1))
    payload = torch.load(good, weights_only=True)
    extra = payload["myllm"]
    if case == "training unknown field":
        extra["training"] = {"stepz": 1}
    elif case == "optimizer moment wrong shape":
        payload["optimizer_state_dict"]["state"][0]["exp_avg"] = torch.ones(3)
    elif case == "model_config invalid":
        payload["model_config"]["d_model"] = 7
    elif case == "rng wrong dtype":
        extra["rng"]["torch"] = torch.ones(3)
    else:
        extra["train_config"] = [1]
    damaged = tmp_path / "damaged.pt"
    torch.save(payload, damaged)
    with pytest.raises(UserError) as refused:
        read_checkpoint(damaged)
    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert str(damaged) in message and "corrupt" in message and "\n" not in message


NOT_CHECKPOINTS = {
    "empty": b"",
    "pickle protocol 4 garbage": b"\x80\x04garbage",
    "plain pickled dict": b"\x80\x02}q\x00.",
    "zip header only": b"PK\x03\x04" + b"\x00" * 40,
    "text": b"not a pickle",
}


@pytest.mark.parametrize("content", NOT_CHECKPOINTS.values(), ids=NOT_CHECKPOINTS.keys())
def test_a_pt_file_that_is_no_checkpoint_is_one_line_and_no_warning(tmp_path, content):
    """torch.load's own warnings (a plain pickle's protocol) would print above the error."""
    import warnings

    from myllm_torch.nanogpt import is_nanogpt_checkpoint

    source = tmp_path / "model.pt"
    source.write_bytes(content)
    for read in (read_checkpoint, is_nanogpt_checkpoint):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(UserError) as refused:
                read(source)
        assert str(source) in str(refused.value) and "\n" not in str(refused.value)
        assert [str(w.message) for w in caught] == []


def test_convert_of_a_pt_file_that_is_no_checkpoint_prints_one_line(tmp_path):
    """The real CLI once: exit 2, one stderr line, nothing written."""
    import subprocess
    import sys

    source = tmp_path / "model.pt"
    source.write_bytes(NOT_CHECKPOINTS["pickle protocol 4 garbage"])
    result = subprocess.run(
        [sys.executable, "-m", "myllm", "convert", str(source), str(tmp_path / "out" / "x.pt")],
        capture_output=True, text=True, env=ONE_THREAD_ENV,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(source) in lines[0], result.stderr
    assert not (tmp_path / "out").exists()
