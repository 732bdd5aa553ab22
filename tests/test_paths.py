"""myllm/paths.py: every path a user gives is checked once, one line naming it and the problem.

Root ignores chmod, so an unreadable file is simulated where the check opens it (os.open raising
PermissionError), and once for real under setpriv without the capabilities that let root read
anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from myllm.checkpoint.io import write_checkpoint
from myllm.cli import app
from myllm.data.char_tokenizer import CharTokenizer
from myllm.errors import UserError
from myllm.paths import check_directory, check_file, check_json_output, write_json_output
from tests.helpers import assert_user_error, constant_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def refuse_open(monkeypatch) -> None:
    def refuse(path, flags, *args):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", refuse)


def refusal(*args: object) -> str:
    """The UserError message of `myllm ARGS` run in-process."""
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert isinstance(result.exception, UserError), result.output
    assert "\n" not in str(result.exception)
    return str(result.exception)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_check_file_names_what_the_path_is(tmp_path, fifo):
    cases = {
        tmp_path / "missing": "missing not found: FIX",
        tmp_path: f"{tmp_path} is a directory, not a file: FIX",
        fifo: "pipe is not a regular file (a pipe, device or socket): FIX",
        Path("/dev/zero"): "/dev/zero is not a regular file",
    }
    for path, expected in cases.items():
        with pytest.raises(UserError) as refused:
            check_file(path, "data file", "FIX")
        assert str(refused.value).startswith(f"data file {path}") and expected in str(refused.value)


def test_check_file_reports_a_file_it_cannot_open(tmp_path, monkeypatch):
    path = tmp_path / "secret.txt"
    path.write_text("x")
    check_file(path, "data file", "FIX")
    refuse_open(monkeypatch)
    with pytest.raises(UserError, match=r"secret\.txt cannot be read \(Permission denied\): FIX"):
        check_file(path, "data file", "FIX")


def test_check_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="file is a file, not a directory: FIX"):
        check_directory(tmp_path / "file", "--mirror", "FIX")
    with pytest.raises(UserError, match="nowhere not found: FIX"):
        check_directory(tmp_path / "nowhere", "--mirror", "FIX")
    check_directory(tmp_path, "--mirror", "FIX")


def test_json_output_is_checked_then_written(tmp_path, monkeypatch, capsys):
    check_json_output(None)
    check_json_output("-")
    with pytest.raises(UserError, match=r"is a directory: pass --json FILE\.json, or --json -"):
        check_json_output(tmp_path)
    (tmp_path / "file").write_text("mine\n")
    with pytest.raises(UserError, match=r"file is a file, not a folder"):
        check_json_output(tmp_path / "file" / "out.json")
    check_json_output(tmp_path / "new" / "out.json")  # folders are made when it is written
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(UserError, match="cannot be written"):
        check_json_output(tmp_path / "out.json")
    monkeypatch.undo()
    write_json_output(tmp_path / "new" / "out.json", {"a": 1})
    assert json.loads((tmp_path / "new" / "out.json").read_text()) == {"a": 1}
    write_json_output("-", {"b": 2})
    assert json.loads(capsys.readouterr().out) == {"b": 2}


def test_data_prepare_names_a_directory_a_device_and_a_pipe(tmp_path, fifo):
    assert "is a directory, not a file" in refusal("data", "prepare", tmp_path)
    assert "/dev/zero is not a regular file" in refusal("data", "prepare", "/dev/zero")
    assert "pipe is not a regular file" in refusal("data", "prepare", fifo)


def test_train_with_an_unreadable_data_file(tmp_path, monkeypatch):
    data = tmp_path / "input.txt"
    data.write_text("hello world " * 100)
    refuse_open(monkeypatch)
    message = refusal("train", "--data", data, "--checkpoint-dir", tmp_path / "run")
    assert f"data file {data} cannot be read (Permission denied)" in message
    assert not (tmp_path / "run").exists()


def test_generate_with_a_directory_or_an_unreadable_tokenizer(tmp_path, monkeypatch):
    checkpoint = tmp_path / "run" / "model.safetensors"
    checkpoint.parent.mkdir()
    write_checkpoint(checkpoint, constant_checkpoint(0))
    message = refusal("generate", "--checkpoint", checkpoint, "--tokenizer", tmp_path)
    assert f"tokenizer file {tmp_path} is a directory, not a file" in message
    CharTokenizer.build_vocab("abc").save(tmp_path / "run" / "tokenizer.json")
    refuse_open(monkeypatch)
    message = refusal("generate", "--checkpoint", checkpoint)
    assert "tokenizer.json cannot be read (Permission denied)" in message


def test_data_fetch_with_a_file_as_mirror(tmp_path):
    (tmp_path / "file").write_text("x")
    message = refusal("data", "fetch", "--mirror", tmp_path / "file", "--dest", tmp_path / "out")
    assert "--mirror" in message and "is a file, not a directory" in message


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to drop the capabilities that let root read any file",
)
def test_an_unreadable_data_file_for_real(tmp_path):
    """The real path: root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, a mode-000 file."""
    data = tmp_path / "input.txt"
    data.write_text("hello world " * 100)
    data.chmod(0)
    command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [*command, sys.executable, "-m", "myllm", "train", "--data", str(data),
         "--checkpoint-dir", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert_user_error(result, f"data file {data} cannot be read (Permission denied)")
    assert not (tmp_path / "run").exists()
