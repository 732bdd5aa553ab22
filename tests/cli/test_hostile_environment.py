"""What surrounds a command goes wrong: a full disk as stdout, a reader that goes away, the
working directory deleted (issue 23 #5, #7). Through the real CLI: the shell's streams and the
process's working directory are the point.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from myllm.checkpoint.io import write_checkpoint
from myllm.config.settings import TrainConfig
from myllm.data.char_tokenizer import CharTokenizer
from tests.helpers import sample_text, tiny_model_config

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny torch checkpoint in its run directory (written in-process, no training)."""
    from myllm.backend.registry import load_backend

    run = tmp_path_factory.mktemp("run")
    tokenizer = CharTokenizer.build_vocab(sample_text(4000))
    config = tiny_model_config(vocab_size=tokenizer.vocab_size)
    trainer = load_backend("torch").Trainer(config, TrainConfig(device="cpu"))
    x = np.zeros((2, 16), dtype=np.int32)
    trainer.train_step(x, x, 1e-3)
    tokenizer.save(run / "tokenizer.json")
    write_checkpoint(run / "checkpoint_last.pt", trainer.checkpoint())
    return run / "checkpoint_last.pt"


def myllm_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "myllm", *map(str, args)]


@pytest.mark.parametrize("samples", [1, 3], ids=["streamed", "batched"])
def test_generate_into_a_full_disk_is_one_line_exit_2(checkpoint, samples):
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            myllm_command(
                "generate",
                "--checkpoint",
                checkpoint,
                "--max-new-tokens",
                50,
                "--num-samples",
                samples,
            ),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            timeout=300,
        )
    message = result.stderr.strip()
    assert result.returncode == 2, message
    assert "\n" not in message and "Traceback" not in message, message
    assert "No space left on device" in message and "free disk space" in message


def test_generate_into_a_closed_pipe_ends_quietly(checkpoint):
    """`myllm generate ... | head -c 10`: the reader goes away after ten bytes."""
    process = subprocess.Popen(
        myllm_command("generate", "--checkpoint", checkpoint, "--max-new-tokens", 10**6),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert len(process.stdout.read(10)) == 10
    process.stdout.close()
    stderr = process.communicate(timeout=300)[1].decode()
    assert process.returncode == 1 and stderr == "", stderr  # quiet, as click ends a closed pipe


def test_a_deleted_working_directory_is_one_line_before_the_backend_loads(checkpoint, tmp_path):
    """Otherwise torch's Intel MKL dies while loading, with only its own fatal error."""
    gone = tmp_path / "gone"
    gone.mkdir()
    command = " ".join(myllm_command("generate", "--checkpoint", checkpoint))
    result = subprocess.run(
        ["sh", "-c", f'cd "{gone}" && rmdir "{gone}" && exec {command}'],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    message = result.stderr.strip()
    assert result.returncode == 2, message
    assert "\n" not in message and "working directory was deleted" in message, message
    assert "cd to an existing folder" in message


def test_generate_past_the_memory_limit_is_refused_before_the_model_loads(checkpoint):
    """Under `prlimit --as=4GiB`, a thousand samples of a million tokens each (issue 23 #6)."""
    import resource

    four_gib = 4 * 1024**3
    result = subprocess.run(
        myllm_command(
            "generate", "--checkpoint", checkpoint, "--num-samples", 1024, "--max-new-tokens", 10**6
        ),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (four_gib, four_gib)),
    )
    message = result.stderr.strip()
    assert result.returncode == 2, message
    assert "\n" not in message and "RLIMIT_AS" in message, message
    assert "lower --num-samples (to at most" in message
