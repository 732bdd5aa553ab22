"""Training that survives: exact resume, safe interrupts, atomic saves, safe loading, NaN guard.

Interrupts are real signals: in-process runs signal themselves from inside a training step (the
real handler then sees them), CLI runs get SIGINT from the test like a user's Ctrl-C.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from myllm.checkpoint import (
    Checkpoint,
    OptimizerState,
    TrainingState,
    parameter_shapes,
    read_checkpoint,
    write_checkpoint,
)
from myllm.config import ModelConfig, TrainConfig
from myllm.errors import UserError
from myllm.interrupts import EXIT_CODES
from myllm.run_files import MetricsLog
from myllm.training import run_training
from tests.helpers import TINY_MODEL, sample_text, tiny_train_config

REPO_ROOT = Path(__file__).resolve().parents[1]
DROPOUT_MODEL = {**TINY_MODEL, "dropout": 0.1}  # dropout on: resume must restore the RNG too
# 700 characters, 630 for training: ceil((630 - 16) / 32) = 20 steps per epoch, 40 in all.
STEPS_PER_EPOCH, TOTAL_STEPS = 20, 40
TINY_CLI = ["--d-model", "32", "--n-heads", "4", "--n-layers", "2", "--block-size", "16",
            "--batch-size", "8", "--dropout", "0.1", "--device", "cpu"]  # fmt: skip
# Tiny models run fastest on one thread; on a shared 2-core machine two threads spin on each other.
ONE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def one_thread():
    """Torch in this process on one thread, like the subprocesses (ONE_THREAD_ENV)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_text(tmp_path: Path) -> Path:
    path = tmp_path / "small.txt"
    path.write_text(sample_text(700), encoding="utf-8")
    return path


def two_epoch_config(data: Path, directory: Path, **overrides) -> TrainConfig:
    values = {"epochs": 2, "batch_size": 32, "log_interval": 1, "eval_iters": 2, **overrides}
    return tiny_train_config(data, directory, **values)


def signal_at_step(monkeypatch, trainer_class, call: int, signum: int) -> None:
    """Send this process `signum` from inside the `call`-th train_step, as a user would."""
    original = trainer_class.train_step
    calls = itertools.count(1)

    def train_step(self, x, y, lr):
        result = original(self, x, y, lr)
        if next(calls) == call:
            os.kill(os.getpid(), signum)
        return result

    monkeypatch.setattr(trainer_class, "train_step", train_step)


def resume_from(backend, checkpoint: Path, **overrides):
    """Resume as `myllm train --resume` does: the stored config, the model from the checkpoint."""
    stored = read_checkpoint(checkpoint).train_config
    return run_training(
        backend.name, TrainConfig.from_dict({**stored, **overrides}), {}, resume=checkpoint
    )


def metric_records(directory: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields, which differ from run to run."""
    lines = (directory / "metrics.jsonl").read_text().splitlines()
    timing = {"tokens_per_second", "elapsed_s"}
    return [{k: v for k, v in json.loads(line).items() if k not in timing} for line in lines]


def train_losses(directory: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["train_loss"]) for r in metric_records(directory) if "val_loss" not in r]


def assert_checkpoints_identical(first: Checkpoint, second: Checkpoint) -> None:
    """float32 tensors bit for bit (weights, AdamW moments, RNG state), the same training state."""
    assert first.training == second.training
    assert first.optimizer.step == second.optimizer.step
    for name, array in first.weights.items():
        np.testing.assert_array_equal(array, second.weights[name], strict=True)
        np.testing.assert_array_equal(first.optimizer.exp_avg[name], second.optimizer.exp_avg[name])
        np.testing.assert_array_equal(
            first.optimizer.exp_avg_sq[name], second.optimizer.exp_avg_sq[name]
        )
    assert first.rng.keys() == second.rng.keys()
    for name, state in first.rng.items():
        np.testing.assert_array_equal(state, second.rng[name])


def all_weights_finite(directory: Path, suffix: str) -> bool:
    return all(
        np.isfinite(array).all()
        for path in directory.glob(f"*{suffix}")
        for array in read_checkpoint(path).weights.values()
    )


def temp_files(directory: Path) -> list[Path]:
    """Hidden files: the temporary files of saves that did not finish (not the token cache)."""
    hidden = (path for path in directory.iterdir() if path.name.startswith("."))
    return sorted(path for path in hidden if path.name != ".myllm_cache")


# --- exact resume ---


@pytest.mark.parametrize(
    ("stop_at", "signum"),
    [(1, signal.SIGINT), (13, signal.SIGTERM), (STEPS_PER_EPOCH, signal.SIGINT)],
    ids=["first-step", "mid-epoch-sigterm", "epoch-end"],
)
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(
    backend, small_text, tmp_path, monkeypatch, stop_at, signum
):
    """Dropout 0.1, float32 on CPU: every step's loss and the final state are bit-identical."""
    whole = run_training(backend.name, two_epoch_config(small_text, tmp_path / "a"), DROPOUT_MODEL)
    assert whole.step == TOTAL_STEPS and whole.exit_code == 0
    with monkeypatch.context() as patch:
        signal_at_step(patch, backend.trainer.Trainer, stop_at, signum)
        first = run_training(
            backend.name, two_epoch_config(small_text, tmp_path / "b"), DROPOUT_MODEL
        )
    assert (first.step, first.interrupted_by, first.exit_code) == (
        stop_at,
        signum,
        EXIT_CODES[signum],
    )
    last = tmp_path / "b" / f"checkpoint_last{backend.checkpoint_suffix}"
    assert read_checkpoint(last).training.step == stop_at
    resumed = resume_from(backend, last)
    assert resumed.step == TOTAL_STEPS and resumed.exit_code == 0
    assert len(train_losses(tmp_path / "a")) == TOTAL_STEPS
    assert train_losses(tmp_path / "b") == train_losses(tmp_path / "a")
    assert metric_records(tmp_path / "b") == metric_records(tmp_path / "a")  # val losses too
    assert resumed.best_val_loss == whole.best_val_loss
    for name in (
        "checkpoint_last",
        "best_model",
        f"checkpoint_epoch_{TOTAL_STEPS // STEPS_PER_EPOCH}",
    ):
        assert_checkpoints_identical(
            read_checkpoint(tmp_path / "a" / f"{name}{backend.checkpoint_suffix}"),
            read_checkpoint(tmp_path / "b" / f"{name}{backend.checkpoint_suffix}"),
        )


# --- interrupts ---


def test_a_second_signal_during_the_last_save_stops_at_once_and_keeps_the_old_checkpoint(
    backend, small_text, tmp_path, monkeypatch
):
    config = two_epoch_config(small_text, tmp_path)
    last = tmp_path / f"checkpoint_last{backend.checkpoint_suffix}"
    with monkeypatch.context() as patch:
        signal_at_step(patch, backend.trainer.Trainer, 3, signal.SIGINT)
        run_training(backend.name, config, DROPOUT_MODEL)
    before = last.read_bytes()

    import myllm.checkpoint

    original_write = myllm.checkpoint.atomic_write

    def write_then_interrupt(path, write):
        def interrupted_write(temp):
            write(temp)  # the new checkpoint is in the temporary file, not yet renamed
            os.kill(os.getpid(), signal.SIGINT)

        original_write(path, interrupted_write if path.name == last.name else write)

    with monkeypatch.context() as patch:
        signal_at_step(patch, backend.trainer.Trainer, 2, signal.SIGINT)
        patch.setattr(myllm.checkpoint, "atomic_write", write_then_interrupt)
        with pytest.raises(SystemExit) as stopped:
            resume_from(backend, last)
    assert stopped.value.code == 130
    assert last.read_bytes() == before and temp_files(tmp_path) == []
    assert resume_from(backend, last).step == TOTAL_STEPS  # still resumable


def myllm_process(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "myllm", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ONE_THREAD_ENV,
    )


def test_sigint_on_the_cli_exits_130_says_how_to_resume_and_the_resume_is_exact(backend, tmp_path):
    """A real Ctrl-C at whatever step the run has reached; the resumed run matches a whole one."""
    data = tmp_path / "input.txt"
    data.write_text(sample_text(), encoding="utf-8")
    args = ["train", "--backend", backend.name, "--data", data, "--max-steps", "150",
            "--eval-interval", "50", "--eval-iters", "2", "--log-interval", "1", "--lr", "3e-3",
            "--seed", "5", *TINY_CLI]  # fmt: skip
    whole = myllm_process(*args, "--checkpoint-dir", tmp_path / "whole")  # meanwhile, the reference
    run = tmp_path / "run"
    process = myllm_process(*args, "--checkpoint-dir", run)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the run ended or stalled before step 5: {process.communicate()[1]}")
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = run / f"checkpoint_last{backend.checkpoint_suffix}"
    [message] = [line for line in stderr.splitlines() if "Resume with:" in line]
    assert f"--backend {backend.name} --resume {last}" in message
    step = read_checkpoint(last).training.step
    assert 5 <= step < 150 and train_losses(run)[-1][0] == step

    resumed = myllm_process("train", "--backend", backend.name, "--resume", last)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert read_checkpoint(last).training.step == 150
    _, stderr = whole.communicate(timeout=300)
    assert whole.returncode == 0, stderr
    assert len(train_losses(run)) == 150
    assert train_losses(run) == train_losses(tmp_path / "whole")


# --- NaN / inf guard ---


def poison_step(monkeypatch, trainer_class, call: int, how: str) -> None:
    """At the `call`-th train_step: return a NaN loss, or step with lr = NaN (NaN weights after)."""
    original = trainer_class.train_step
    calls = itertools.count(1)

    def train_step(self, x, y, lr):
        if next(calls) != call:
            return original(self, x, y, lr)
        if how == "nan-lr":
            return original(self, x, y, float("nan"))
        loss, grad_norm = original(self, x, y, lr)
        return loss * float("nan"), grad_norm

    monkeypatch.setattr(trainer_class, "train_step", train_step)


@pytest.mark.parametrize(
    ("how", "call", "eval_interval", "stopped_at", "reason"),
    [
        ("nan-loss", 4, None, 9, "loss nan"),
        ("nan-lr", 4, None, 10, "loss nan"),  # step 9's loss is finite, step 10's is not
        ("nan-lr", 15, None, 20, "validation loss nan"),  # epoch end: evaluated before saving
        ("nan-lr", 15, 100, 20, "non-finite weights when saving checkpoint_epoch_1"),
    ],
    ids=["nan-loss", "nan-weights", "nan-before-evaluation", "nan-before-epoch-save"],
)
def test_non_finite_training_stops_and_keeps_the_last_good_checkpoint(
    backend, small_text, tmp_path, monkeypatch, how, call, eval_interval, stopped_at, reason
):
    config = two_epoch_config(small_text, tmp_path, eval_interval=eval_interval)
    suffix = backend.checkpoint_suffix
    last = tmp_path / f"checkpoint_last{suffix}"
    with monkeypatch.context() as patch:
        signal_at_step(patch, backend.trainer.Trainer, 5, signal.SIGINT)
        run_training(backend.name, config, DROPOUT_MODEL)
    before = last.read_bytes()
    poison_step(monkeypatch, backend.trainer.Trainer, call, how)
    with pytest.raises(UserError) as diverged:
        resume_from(backend, last)
    message = str(diverged.value)
    assert diverged.value.exit_code == 1
    assert f"diverged at step {stopped_at} ({reason}" in message, message
    assert f"the last good checkpoint is {last}" in message and "--lr 0.003" in message
    assert "\n" not in message
    assert last.read_bytes() == before
    assert all_weights_finite(tmp_path, suffix)
    assert not (tmp_path / f"checkpoint_epoch_1{suffix}").exists()


def test_divergence_on_the_cli_is_one_line_exit_1(backend, small_text, tmp_path, monkeypatch):
    """An absurd --lr on resume: exit 1, one error line, no traceback, checkpoint_last untouched."""
    last = tmp_path / f"checkpoint_last{backend.checkpoint_suffix}"
    with monkeypatch.context() as patch:
        signal_at_step(patch, backend.trainer.Trainer, 5, signal.SIGINT)
        run_training(backend.name, two_epoch_config(small_text, tmp_path), DROPOUT_MODEL)
    before = last.read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "myllm", "train", "--backend", backend.name, "--resume", str(last),
         "--lr", "1e6"],
        capture_output=True, text=True, timeout=300, env=ONE_THREAD_ENV,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    [error] = [line for line in result.stderr.splitlines() if "error" in line]
    assert error.startswith("error: training diverged at step ")
    assert f"the last good checkpoint is {last}" in error and "--lr 1000000.0" in error
    assert last.read_bytes() == before


# --- atomic writes ---

KILL_WRITER = r"""
import os, sys, time
from pathlib import Path
from myllm.checkpoint import write_checkpoint
from tests.test_resilience import constant_checkpoint
path, parent = Path(sys.argv[1]), os.getpid()
versions = [constant_checkpoint(v, d_model=64, n_layers=2) for v in (1, 2)]  # ~1 MB each
write_checkpoint(path, versions[0])  # imports torch or safetensors once, before the forks
start = time.perf_counter()
write_checkpoint(path, versions[0])
print(time.perf_counter() - start, flush=True)  # how long one save takes
for _ in sys.stdin:
    pid = os.fork()
    if pid == 0:  # save the two versions in turn until killed
        index = 0
        while os.getppid() == parent:
            index += 1
            write_checkpoint(path, versions[index % 2])
        os._exit(0)
    print(pid, flush=True)
    os.waitpid(pid, 0)
    print("killed", flush=True)
"""


def constant_checkpoint(value: int, d_model: int = 8, n_layers: int = 1) -> Checkpoint:
    """A checkpoint whose every tensor holds `value` (training.step too): a mix of two shows."""
    config = ModelConfig(
        vocab_size=65, d_model=d_model, n_heads=2, n_layers=n_layers, max_seq_len=16
    )
    shapes = parameter_shapes(config)

    def tensors():
        return {name: np.full(shape, value, np.float32) for name, shape in shapes.items()}

    return Checkpoint(
        config,
        tensors(),
        TrainingState(step=value),
        train_config={"lr": 1e-3},
        optimizer=OptimizerState(step=value, exp_avg=tensors(), exp_avg_sq=tensors()),
        rng={"torch": np.full(5056, value, np.uint8)},
    )


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_sigkill_during_saves_never_leaves_an_unreadable_checkpoint(tmp_path, suffix):
    """12 SIGKILLs at random moments of back-to-back saves: the file is always one whole version.

    One process imports the writer once and forks a fresh one per kill, to keep this fast.
    """
    path = tmp_path / f"checkpoint_last{suffix}"
    writer = subprocess.Popen(
        [sys.executable, "-c", KILL_WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=ONE_THREAD_ENV,
    )
    killed_mid_save, leftovers, rng = 0, 0, random.Random(0)
    try:
        save_seconds = float(writer.stdout.readline())
        for _ in range(12):
            writer.stdin.write("go\n")
            writer.stdin.flush()
            pid = int(writer.stdout.readline())
            time.sleep(rng.uniform(0.2, 3.0) * save_seconds)
            os.kill(pid, signal.SIGKILL)
            assert writer.stdout.readline().strip() == "killed"
            killed_mid_save += len(temp_files(tmp_path)) > leftovers  # a save left its temp file
            leftovers = len(temp_files(tmp_path))
            loaded = read_checkpoint(path)
            version = loaded.training.step
            assert version in (1, 2)
            for name, array in loaded.weights.items():  # whole, not a mix of two saves
                assert (array == version).all(), name
                assert (loaded.optimizer.exp_avg_sq[name] == version).all(), name
    finally:
        writer.kill()  # a writer still running sees its parent gone and exits
        writer.communicate(timeout=60)
    assert killed_mid_save >= 4  # the kills really did land inside saves


def test_a_failed_checkpoint_save_stops_with_one_line_and_keeps_the_old_one(
    backend, small_text, tmp_path, monkeypatch
):
    """Disk full at the rename of a checkpoint: a UserError, the previous file whole, no litter."""
    suffix = backend.checkpoint_suffix
    last = tmp_path / f"checkpoint_last{suffix}"
    with monkeypatch.context() as patch:
        signal_at_step(patch, backend.trainer.Trainer, 5, signal.SIGINT)
        run_training(backend.name, two_epoch_config(small_text, tmp_path), DROPOUT_MODEL)
    before = last.read_bytes()
    replace = os.replace

    def disk_full_for_checkpoints(source, destination):
        if str(destination).endswith(suffix):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        replace(source, destination)

    monkeypatch.setattr(os, "replace", disk_full_for_checkpoints)
    with pytest.raises(UserError) as failed:
        resume_from(backend, last)
    message = str(failed.value)
    assert "No space left on device" in message and "intact" in message and "\n" not in message
    assert last.read_bytes() == before and temp_files(tmp_path) == []


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_real_write_failure_is_a_user_error_and_keeps_the_old_file(tmp_path, suffix):
    """A real write failure (a file-size limit: EFBIG, like ENOSPC) while the file is written."""
    path = tmp_path / f"c{suffix}"
    write_checkpoint(path, constant_checkpoint(1))
    before = path.read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, hard))
    try:
        with pytest.raises(UserError, match="intact"):
            write_checkpoint(path, constant_checkpoint(2))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path.read_bytes() == before and temp_files(tmp_path) == []


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_atomic_writes_get_the_usual_file_permissions(tmp_path, suffix):
    """Not mkstemp's owner-only 0600: checkpoints are shared like any file the user writes."""
    umask = os.umask(0o022)
    try:
        write_checkpoint(tmp_path / f"c{suffix}", constant_checkpoint(1))
    finally:
        os.umask(umask)
    assert (tmp_path / f"c{suffix}").stat().st_mode & 0o777 == 0o644


def test_metrics_write_errors_are_user_errors(tmp_path, monkeypatch):
    """metrics.jsonl is appended and fsynced per record (not renamed); a failure is one line."""
    log = MetricsLog(tmp_path / "metrics.jsonl", append=False)
    log.write({"step": 1})

    def disk_full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(UserError, match="No space left on device"):
        log.write({"step": 2})
    log.close()
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0]) == {"step": 1}


# --- safe loading ---


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


# --- bad input on the CLI: exit 2, one line, nothing run, nothing written ---


def test_an_unusable_checkpoint_dir_is_a_user_error(backend, small_text, tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    config = two_epoch_config(small_text, tmp_path / "a_file" / "run")
    with pytest.raises(UserError, match="cannot create the checkpoint directory") as refused:
        run_training(backend.name, config, DROPOUT_MODEL)
    assert refused.value.exit_code == 2


def test_bad_resume_inputs_exit_2(tmp_path):
    import torch
    from safetensors.numpy import save_file

    from tests.test_checkpoint import RunsCode
    from tests.test_cli import assert_user_error

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
        result = subprocess.run(
            [sys.executable, "-m", "myllm", "train", "--data", str(data), "--max-steps", "1",
             "--block-size", "4", *map(str, args)],
            capture_output=True, text=True, timeout=120, env=ONE_THREAD_ENV,
        )  # fmt: skip
        assert_user_error(result, *fragments)
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["evil.pt", "no_metadata.safetensors", "garbled.safetensors", "input.txt"]
    )  # fmt: skip
