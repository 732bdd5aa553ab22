"""`myllm convert` never loses a file: no replacement without --overwrite, never a run's own
checkpoint, an HF directory's other files kept; and it says what it did with the tokenizer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from myllm.cli.app import main
from myllm.data.char_tokenizer import CharTokenizer
from tests.helpers import ONE_THREAD_ENV, assert_user_error
from tests.interop.models import write_model


def run_convert(monkeypatch, capsys, *args) -> tuple[int, str]:
    """(exit code, stderr) of `myllm convert ARGS`, in-process."""
    monkeypatch.setattr(sys, "argv", ["myllm", "convert", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code or 0
    return code, capsys.readouterr().err


@pytest.fixture
def source(tmp_path):
    return write_model(tmp_path / "run")


def test_an_existing_file_is_replaced_only_with_overwrite(monkeypatch, capsys, source, tmp_path):
    destination = tmp_path / "out" / "model.safetensors"
    destination.parent.mkdir()
    destination.write_bytes(b"someone's work")
    code, err = run_convert(monkeypatch, capsys, source, destination)
    assert code == 2 and "exists: pass --overwrite" in err
    assert destination.read_bytes() == b"someone's work"
    code, err = run_convert(monkeypatch, capsys, source, destination, "--overwrite")
    assert code == 0 and destination.read_bytes() != b"someone's work"


@pytest.mark.parametrize("name", ["checkpoint_last.safetensors", "best_model.pt"])
def test_a_runs_own_checkpoint_is_never_replaced(monkeypatch, capsys, source, tmp_path, name):
    other_run = tmp_path / "other"
    other_run.mkdir()
    (other_run / "run.json").write_text("{}")
    (other_run / name).write_bytes(b"run mlxb's weights")
    for flags in ([], ["--overwrite"]):
        code, err = run_convert(monkeypatch, capsys, source, other_run / name, *flags)
        assert code == 2 and "is the checkpoint of the run" in err
    assert (other_run / name).read_bytes() == b"run mlxb's weights"


def test_convert_says_what_it_did_with_the_tokenizer(monkeypatch, capsys, source, tmp_path):
    first = tmp_path / "a" / "model.pt"
    first.parent.mkdir()
    code, err = run_convert(monkeypatch, capsys, source, first)
    assert code == 0 and f"and its tokenizer {first.parent / 'tokenizer.json'}" in err
    second = first.parent / "model.safetensors"
    code, err = run_convert(monkeypatch, capsys, source, second)
    assert code == 0 and "already holds its vocabulary" in err
    (source.parent / "tokenizer.json").unlink()
    lonely = tmp_path / "b" / "model.pt"
    lonely.parent.mkdir()
    code, err = run_convert(monkeypatch, capsys, source, lonely)
    assert code == 0 and "no tokenizer.json" in err and "--tokenizer" in err
    assert not (lonely.parent / "tokenizer.json").exists()


def test_hf_and_gguf_need_the_models_tokenizer(monkeypatch, capsys, source, tmp_path):
    (source.parent / "tokenizer.json").unlink()
    for args in (["--to", "hf", tmp_path / "hf"], ["--to", "gguf", tmp_path / "m.gguf"]):
        code, err = run_convert(monkeypatch, capsys, source, args[2], *args[:2])
        assert code == 2 and "tokenizer.json" in err and "not found" in err
    CharTokenizer.build_vocab("abc").save(source.parent / "tokenizer.json")
    code, err = run_convert(monkeypatch, capsys, source, tmp_path / "m.gguf", "--to", "gguf")
    assert code == 2 and "tokenizer has 3 characters" in err
    assert not (tmp_path / "hf").exists() and not (tmp_path / "m.gguf").exists()


def test_an_hf_directory_keeps_its_other_files(monkeypatch, capsys, source, tmp_path):
    directory = tmp_path / "hf"
    directory.mkdir()
    (directory / "README.md").write_text("my notes")
    (directory / "config.json").write_text("{}")
    code, err = run_convert(monkeypatch, capsys, source, directory, "--to", "hf")
    assert code == 2 and "exists and is not empty: pass --overwrite" in err
    assert (directory / "config.json").read_text() == "{}"
    code, _ = run_convert(monkeypatch, capsys, source, directory, "--to", "hf", "--overwrite")
    assert code == 0 and json.loads((directory / "config.json").read_text())["model_type"] == "gpt2"
    assert (directory / "README.md").read_text() == "my notes"
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        ["README.md", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    )


def test_a_run_directory_is_never_an_hf_output(monkeypatch, capsys, source):
    (source.parent / "run.json").write_text("{}")
    code, err = run_convert(monkeypatch, capsys, source, source.parent, "--to", "hf", "--overwrite")
    assert code == 2 and "training run's directory" in err


def test_nanogpt_refuses_gelu_tanh(monkeypatch, capsys, tmp_path):
    source = write_model(tmp_path / "run", activation="gelu_tanh")
    code, err = run_convert(
        monkeypatch, capsys, source, tmp_path / "out" / "ckpt.pt", "--to", "nanogpt"
    )
    assert code == 2 and "nanoGPT computes the exact GELU" in err


def test_the_real_command_refuses_an_existing_hf_directory(source, tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    result = subprocess.run(
        [sys.executable, "-m", "myllm", "convert", str(source), str(tmp_path / "hf"), "--to", "hf"],
        capture_output=True, text=True, env=ONE_THREAD_ENV, timeout=300,
    )  # fmt: skip
    assert_user_error(result, "exists and is not empty")


def test_a_missing_interop_package_is_one_line(monkeypatch, capsys, source, tmp_path):
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf now raises ImportError
    code, err = run_convert(monkeypatch, capsys, source, tmp_path / "m.gguf", "--to", "gguf")
    assert code == 2 and "needs the gguf package: pip install 'myllm-twin[interop]'" in err
    assert not (tmp_path / "m.gguf").exists()
