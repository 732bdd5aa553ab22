"""Issue 26's acceptance figures: a myllm model run by transformers, mlx-lm and llama.cpp.

Small models are trained on Tiny Shakespeare with the real CLI (both backends, both
activations), converted with `myllm convert` like a user would, and run by each tool:
- transformers, float32: worst |logit difference| against myllm over a 256-character window,
  greedy 200 characters, and the import back (`convert HF_DIR back.pt`) against myllm's logits;
- mlx-lm: `mlx_lm.generate` at temperature 0 against myllm's greedy text (its GPT-2 computes
  GELU's tanh form: exact for gelu_tanh models);
- llama.cpp (llama-cpp-python, where installed): f32 and f16 GGUF, greedy characters that agree
  and the worst logit difference over the prompt and the generated positions.

    .venv/bin/python benchmarks/interop_acceptance.py [--steps 300] [--out FILE.json]
    (--steps 0: untrained random weights, as in benchmarks/results/interop-random.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import torch  # isort: skip  (before MLX: myllm_mlx's BLAS set-up; see tests/conftest.py)
import myllm_mlx  # noqa: F401  # isort: skip

import numpy as np

from myllm.backend.registry import load_backend
from myllm.checkpoint.io import read_checkpoint
from myllm.config.settings import TrainConfig
from myllm.data.tokenizers import load_tokenizer
from myllm.generate.loop import generate_tokens
from myllm.generate.sampling import SamplingSettings

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
MODEL = ["--d-model", "64", "--n-heads", "4", "--n-layers", "2", "--block-size", "256",
         "--batch-size", "16", "--dropout", "0.0", "--device", "cpu"]  # fmt: skip
PROMPT, NEW = "ROMEO:\nWhat say", 200
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def myllm(*args: object) -> None:
    command = [sys.executable, "-m", "myllm", *map(str, args)]
    subprocess.run(command, check=True, env=ENV, capture_output=True, text=True)


def train(work: Path, backend: str, activation: str, steps: int) -> Path:
    run = work / f"{backend}-{activation}"
    myllm("train", "--data", DATA, "--checkpoint-dir", run, "--backend", backend, *MODEL,
          "--activation", activation, "--max-steps", steps, "--eval-interval", steps,
          "--eval-iters", 2, "--lr", "3e-3", "--save-minutes", 0)  # fmt: skip
    return run / f"best_model{'.pt' if backend == 'torch' else '.safetensors'}"


class Ours:
    """myllm's own logits and greedy continuation of a checkpoint, on its backend."""

    def __init__(self, backend: str, path: Path):
        self.checkpoint = read_checkpoint(path)
        config = self.checkpoint.model_config
        trainer = load_backend(backend).Trainer(
            config, TrainConfig(device="cpu", block_size=config.max_seq_len)
        )
        trainer.load_checkpoint(self.checkpoint)
        self.trainer, self.backend = trainer, load_backend(backend)
        self.ops = self.backend.BenchOps(trainer)
        self.tokenizer = load_tokenizer(path.parent / "tokenizer.json")

    def logits(self, ids: list[int]) -> np.ndarray:
        out = self.ops.forward(self.trainer.to_device(np.array([ids], np.int32)))
        return np.asarray(out.float().cpu() if hasattr(out, "cpu") else out)[0]

    def greedy(self, ids: list[int], new: int = NEW) -> list[int]:
        greedy = SamplingSettings(temperature=0.0, max_new_tokens=new)
        steps = generate_tokens(self.trainer.decoder(), ids, greedy, None)
        return [int(step[0]) for step in steps]


def agreeing(first: str, second: str) -> int:
    """How many characters agree before the first difference."""
    pairs = zip(first, second, strict=False)
    return next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(first), len(second)))


def transformers_figures(ours: Ours, directory: Path, window: list[int]) -> dict:
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    vocab = ours.checkpoint.model_config.vocab_size
    with torch.no_grad():
        theirs = model.eval()(torch.tensor([window])).logits[0, :, :vocab].numpy()
    ids = tokenizer(PROMPT)["input_ids"]
    generated = model.generate(torch.tensor([ids]), max_new_tokens=NEW, do_sample=False)
    text = tokenizer.decode(generated[0, len(ids) :])
    expected = ours.tokenizer.decode(ours.greedy(ids))
    return {
        "logits_max_abs_diff": float(np.abs(theirs - ours.logits(window)).max()),
        "prompt_ids_identical": ids == ours.tokenizer.encode(PROMPT),
        "greedy_chars_agreeing": agreeing(text, expected),
        "greedy_identical": text == expected,
        "greedy_text_start": expected[:80],
    }


def import_back_figures(ours: Ours, backend: str, directory: Path, window: list[int]) -> dict:
    back = (
        directory.parent / f"{directory.name}-back{'.pt' if backend == 'torch' else '.safetensors'}"
    )
    myllm("convert", directory, back)
    again = Ours(backend, back)
    return {"logits_max_abs_diff": float(np.abs(again.logits(window) - ours.logits(window)).max())}


def mlx_lm_figures(ours: Ours, directory: Path) -> dict:
    import mlx_lm
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = mlx_lm.load(str(directory))
    text = mlx_lm.generate(model, tokenizer, PROMPT, max_tokens=NEW, sampler=make_sampler(0.0))
    expected = ours.tokenizer.decode(ours.greedy(ours.tokenizer.encode(PROMPT)))
    return {"greedy_chars_agreeing": agreeing(text, expected), "greedy_identical": text == expected}


def llama_cpp_figures(ours: Ours, path: Path) -> dict:
    import llama_cpp

    ctx = ours.checkpoint.model_config.max_seq_len
    llm = llama_cpp.Llama(str(path), n_ctx=ctx, logits_all=True, n_threads=1, verbose=False)
    ids = llm.tokenize(PROMPT.encode("utf-8"), add_bos=False, special=False)
    llm.eval(ids)
    generated = []
    for _ in range(NEW):
        generated.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        if len(generated) < NEW:
            llm.eval([generated[-1]])
    sequence = ids + generated
    vocab = ours.checkpoint.model_config.vocab_size
    theirs = np.asarray(llm.scores[: len(sequence) - 1])[:, :vocab]
    text = llm.detokenize(generated).decode("utf-8", "replace")
    expected = ours.tokenizer.decode(ours.greedy(ours.tokenizer.encode(PROMPT)))
    return {
        "prompt_ids_identical": ids == ours.tokenizer.encode(PROMPT),
        "greedy_chars_agreeing": agreeing(text, expected),
        "greedy_identical": text == expected,
        "logits_max_abs_diff": float(np.abs(theirs - ours.logits(sequence[:-1])).max()),
    }


def random_model(work: Path, backend: str, activation: str) -> Path:
    """Untrained weights N(0, 0.3) (LayerNorms 1 + N(0, 0.1)): greedy text that wanders, unlike
    a briefly trained model's repetitive one, and logits far apart, so mapping errors show."""
    from myllm.checkpoint.io import write_checkpoint
    from myllm.checkpoint.state import Checkpoint, parameter_shapes
    from myllm.config.settings import ModelConfig
    from myllm.data.char_tokenizer import CharTokenizer

    tokenizer = CharTokenizer.build_vocab(DATA.read_text(encoding="utf-8"))
    config = ModelConfig(vocab_size=tokenizer.vocab_size, d_model=64, n_heads=4, n_layers=2,
                         max_seq_len=256, dropout=0.0, activation=activation)  # fmt: skip
    rng = np.random.default_rng(0)
    weights = {n: rng.normal(0.0, 0.3 if len(s) > 1 else 0.1, s).astype(np.float32)
               for n, s in parameter_shapes(config).items()}  # fmt: skip
    for name in weights:
        weights[name] += 1.0 if name.endswith(".weight") and "ln" in name else 0.0
    run = work / f"{backend}-{activation}"
    run.mkdir()
    tokenizer.save(run / "tokenizer.json")
    path = run / f"model{'.pt' if backend == 'torch' else '.safetensors'}"
    write_checkpoint(path, Checkpoint(model_config=config, weights=weights))
    return path


def measure(work: Path, steps: int, backends: list[str]) -> dict:
    """steps 0: random_model's untrained weights."""
    window_text = DATA.read_text(encoding="utf-8")[-256:]
    results: dict = {}
    for backend in backends:
        for activation in ("gelu", "gelu_tanh"):
            if steps:
                checkpoint = train(work, backend, activation, steps)
            else:
                checkpoint = random_model(work, backend, activation)
            ours = Ours(backend, checkpoint)
            window = ours.tokenizer.encode(window_text)
            hf = work / f"hf-{backend}-{activation}"
            myllm("convert", checkpoint, hf, "--to", "hf")
            entry = {
                "transformers": transformers_figures(ours, hf, window),
                "import_back": import_back_figures(ours, backend, hf, window),
            }
            entry["mlx_lm"] = mlx_lm_figures(ours, hf)  # exact only for gelu_tanh
            if backend == "torch" and _installed("llama_cpp"):
                for outtype in ("f32", "f16"):
                    path = work / f"{backend}-{activation}-{outtype}.gguf"
                    myllm("convert", checkpoint, path, "--to", "gguf", "--outtype", outtype)
                    entry[f"llama_cpp_{outtype}"] = llama_cpp_figures(ours, path)
            entry["val_loss"] = ours.checkpoint.training.best_val_loss
            results[f"{backend}/{activation}"] = entry
            print(backend, activation, json.dumps(entry), flush=True)
    return results


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def versions() -> dict:
    names = ["torch", "mlx", "transformers", "tokenizers", "mlx-lm", "gguf", "llama_cpp_python"]
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="0: untrained random weights")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/interop.json")
    parser.add_argument("--backends", nargs="+", default=["torch", "mlx"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        results = measure(Path(work), args.steps, args.backends)
    report = {
        "what": "issue 26 acceptance: exported myllm models in transformers, mlx-lm, llama.cpp",
        "model": " ".join(MODEL), "train_steps": args.steps, "prompt": PROMPT, "new_chars": NEW,
        "dtype": "float32 (llama_cpp_f16: float16 weight matrices)",
        "machine": f"{platform.machine()} {os.cpu_count()} cores, shared and loaded",
        "versions": versions(), "results": results,
    }  # fmt: skip
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
