"""nanoGPT interop through `myllm convert`: both directions, both backends, hostile files refused.

The nanoGPT side is a faithful few-line re-implementation of karpathy/nanoGPT's model.py (module
names, LayerNorm with optional bias, fused c_attn, nn.GELU, tied lm_head) and of the checkpoint
dict its train.py saves; nothing is imported from myllm to build it. Tolerance: logits within
1e-5 in float32; greedy text identical.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from myllm.backend.registry import load_backend
from myllm.checkpoint.io import read_checkpoint, write_checkpoint
from myllm.cli.convert import convert
from myllm.data.tokenizers import load_tokenizer
from myllm.errors import UserError
from myllm.generate.repl import GenerationRequest, generate_text
from myllm.generate.sampling import SamplingSettings
from myllm.interop.nanogpt_meta import read_meta
from tests.helpers import BACKENDS, logits_of, sample_text

TOLERANCE = 1e-5  # float32 logits
SUFFIX = {"torch": ".pt", "mlx": ".safetensors"}


# --- nanoGPT, as its model.py writes it ---


class NanoLayerNorm(nn.Module):
    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class NanoAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, bias: bool):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.n_head, self.n_embd = n_head, n_embd

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(torch.ones(T, T).tril() == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class NanoMLP(nn.Module):
    def __init__(self, n_embd: int, bias: bool):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class NanoBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int, bias: bool):
        super().__init__()
        self.ln_1 = NanoLayerNorm(n_embd, bias)
        self.attn = NanoAttention(n_embd, n_head, bias)
        self.ln_2 = NanoLayerNorm(n_embd, bias)
        self.mlp = NanoMLP(n_embd, bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    def __init__(self, n_layer, n_head, n_embd, block_size, bias, vocab_size, dropout=0.0):
        super().__init__()
        self.block_size = block_size
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(vocab_size, n_embd),
                wpe=nn.Embedding(block_size, n_embd),
                drop=nn.Dropout(dropout),
                h=nn.ModuleList([NanoBlock(n_embd, n_head, bias) for _ in range(n_layer)]),
                ln_f=NanoLayerNorm(n_embd, bias),
            )
        )
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx):
        pos = torch.arange(0, idx.shape[1])
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))  # [B, T, vocab], every position


def nanogpt_greedy(model: NanoGPT, ids: list[int], max_new_tokens: int) -> list[int]:
    """nanoGPT's generate() at temperature -> 0: crop to block_size, take the argmax."""
    idx = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(idx[:, -model.block_size :])[:, -1, :]
            idx = torch.cat([idx, logits.argmax(dim=-1, keepdim=True)], dim=1)
    return idx[0, len(ids) :].tolist()


def train_nanogpt_step(model: NanoGPT, weight_decay: float = 0.1) -> torch.optim.AdamW:
    """One AdamW step with nanoGPT's configure_optimizers groups, so moments are not zero."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99))
    idx = torch.randint(0, model.lm_head.weight.shape[0], (2, model.block_size))
    logits = model(idx)
    F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), idx[:, 1:].reshape(-1)).backward()
    optimizer.step()
    return optimizer


def write_nanogpt_run(directory: Path, *, bias=False, compiled=False, seed=0):
    """ckpt.pt and meta.pkl exactly as nanoGPT's train.py and prepare.py write them."""
    torch.manual_seed(seed)
    chars = sorted(set(sample_text(3000)))
    model_args = dict(n_layer=2, n_head=4, n_embd=32, block_size=16, bias=bias,
                      vocab_size=len(chars), dropout=0.0)  # fmt: skip
    model = NanoGPT(**model_args)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                parameter.normal_(0.0, 0.1)  # nonzero, so a mapping mistake shows in the logits
            else:
                parameter.normal_(0.0, 0.3)
    optimizer = train_nanogpt_step(model)
    state = model.state_dict()
    if compiled:
        state = {f"_orig_mod.{name}": tensor for name, tensor in state.items()}
    config = {
        "dataset": "shakespeare_char", "learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.99,
        "weight_decay": 0.1, "grad_clip": 1.0, "batch_size": 12, "block_size": 16,
        "warmup_iters": 10, "max_iters": 100, "min_lr": 1e-4, "eval_interval": 50,
        "eval_iters": 20, "log_interval": 1, "compile": compiled,
    }  # fmt: skip
    checkpoint = {
        "model": state, "optimizer": optimizer.state_dict(), "model_args": model_args,
        "iter_num": 100, "best_val_loss": torch.tensor(1.75), "config": config,
    }  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, directory / "ckpt.pt")
    meta = {"vocab_size": len(chars), "itos": dict(enumerate(chars)),
            "stoi": {ch: i for i, ch in enumerate(chars)}}  # fmt: skip
    (directory / "meta.pkl").write_bytes(pickle.dumps(meta))
    return model.eval(), chars


def load_like_sample_py(directory: Path) -> tuple[NanoGPT, dict]:
    """What nanoGPT's sample.py does with out_dir/ckpt.pt and the dataset's meta.pkl."""
    checkpoint = torch.load(directory / "ckpt.pt", map_location="cpu", weights_only=True)
    model = NanoGPT(**checkpoint["model_args"])
    state = checkpoint["model"]
    for key in list(state):
        if key.startswith("_orig_mod."):
            state[key[len("_orig_mod.") :]] = state.pop(key)
    model.load_state_dict(state)  # strict: every key nanoGPT expects, nothing else
    assert checkpoint["config"]["dataset"]
    with open(directory / "meta.pkl", "rb") as handle:  # our own file: plain pickle is fine here
        meta = pickle.load(handle)
    return model.eval(), meta


# --- myllm side ---


def myllm_greedy(backend_name: str, checkpoint_path: Path, prompt: str, tokens: int) -> str:
    backend = load_backend(backend_name)
    decoder = backend.load_decoder(read_checkpoint(checkpoint_path), "cpu")
    tokenizer = load_tokenizer(checkpoint_path.parent / "tokenizer.json")
    request = GenerationRequest(
        tokenizer, SamplingSettings(0.0, 0, 1.0, tokens), np.random.default_rng(0)
    )
    return generate_text(decoder, request, prompt)[0]


def myllm_logits(backend_name: str, checkpoint_path: Path, ids: np.ndarray) -> np.ndarray:
    backend = load_backend(backend_name)
    model = backend.load_decoder(read_checkpoint(checkpoint_path), "cpu").model
    return logits_of(backend, model, ids)


def run_convert(source: Path, destination: Path, to: str = "myllm") -> None:
    convert(source, destination, to=to, meta=None, dataset="shakespeare_char")


IDS = np.random.default_rng(1).integers(0, 40, size=(3, 16))
PROMPT, NEW_TOKENS = "ROMEO:", 30  # 36 > block_size 16: cropping is exercised too


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_nanogpt_checkpoint_becomes_myllm(tmp_path, backend_name, compiled):
    reference, chars = write_nanogpt_run(tmp_path / "out", compiled=compiled)
    destination = tmp_path / "myllm" / f"model{SUFFIX[backend_name]}"
    run_convert(tmp_path / "out" / "ckpt.pt", destination)

    assert load_tokenizer(destination.parent / "tokenizer.json").chars == chars
    with torch.no_grad():
        expected = reference(torch.from_numpy(IDS)).numpy()
    worst = np.abs(myllm_logits(backend_name, destination, IDS) - expected).max()
    assert worst <= TOLERANCE, f"worst logit difference {worst:.2e} (float32)"
    prompt_ids = [chars.index(ch) for ch in PROMPT]
    reference_text = "".join(chars[i] for i in nanogpt_greedy(reference, prompt_ids, NEW_TOKENS))
    assert myllm_greedy(backend_name, destination, PROMPT, NEW_TOKENS) == reference_text

    converted = read_checkpoint(destination)
    assert converted.training.step == 100 and converted.training.best_val_loss == 1.75
    assert converted.train_config["lr"] == 1e-3 and converted.train_config["beta2"] == 0.99


def test_nanogpt_optimizer_moments_follow_the_weights(tmp_path):
    """AdamW is elementwise, so c_attn's moments split exactly like its weight."""
    write_nanogpt_run(tmp_path / "out")
    destination = tmp_path / "myllm" / "model.pt"
    run_convert(tmp_path / "out" / "ckpt.pt", destination)
    payload = torch.load(tmp_path / "out" / "ckpt.pt", weights_only=True)
    converted = read_checkpoint(destination)
    # nanoGPT's decayed group: wte, wpe, then per block c_attn, c_proj, c_fc, mlp.c_proj.
    c_attn_moment = payload["optimizer"]["state"][2]["exp_avg"].numpy()  # block 0's c_attn
    assert np.any(c_attn_moment != 0)
    np.testing.assert_array_equal(
        converted.optimizer.exp_avg["blocks.0.attention.W_k.weight"], c_attn_moment[32:64]
    )
    assert converted.optimizer.step == 1
    assert not np.any(converted.optimizer.exp_avg["blocks.0.attention.W_o.bias"])


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_myllm_checkpoint_becomes_nanogpt(tmp_path, backend_name):
    write_nanogpt_run(tmp_path / "out", seed=3)
    source = tmp_path / "myllm" / f"model{SUFFIX[backend_name]}"
    run_convert(tmp_path / "out" / "ckpt.pt", source)
    original = read_checkpoint(source)
    rng = np.random.default_rng(5)
    for name, array in original.weights.items():  # myllm's biases are not zero after training
        if name.endswith(".bias"):
            array[...] = rng.normal(0.0, 0.1, array.shape)
    write_checkpoint(source, original)

    exported = tmp_path / "nanogpt" / "ckpt.pt"
    run_convert(source, exported, to="nanogpt")
    nanogpt_model, meta = load_like_sample_py(exported.parent)
    chars = load_tokenizer(source.parent / "tokenizer.json").chars
    assert [meta["itos"][i] for i in range(meta["vocab_size"])] == chars

    with torch.no_grad():
        theirs = nanogpt_model(torch.from_numpy(IDS)).numpy()
    worst = np.abs(myllm_logits(backend_name, source, IDS) - theirs).max()
    assert worst <= TOLERANCE, f"worst logit difference {worst:.2e} (float32)"
    prompt_ids = [meta["stoi"][ch] for ch in PROMPT]
    their_text = "".join(meta["itos"][i] for i in nanogpt_greedy(nanogpt_model, prompt_ids, 30))
    assert myllm_greedy(backend_name, source, PROMPT, NEW_TOKENS) == their_text

    back = tmp_path / "back" / f"model{SUFFIX[backend_name]}"
    run_convert(exported, back)  # and back again: bit-exact
    for name, array in original.weights.items():
        np.testing.assert_array_equal(read_checkpoint(back).weights[name], array)


class RunsCode:
    """Unpickling this calls os.system: the meta.pkl reader must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_hostile_meta_pkl_is_refused_and_runs_nothing(tmp_path):
    write_nanogpt_run(tmp_path / "out")
    marker = tmp_path / "pwned"
    meta = tmp_path / "out" / "meta.pkl"
    meta.write_bytes(pickle.dumps({"itos": {0: "a"}, "payload": RunsCode(marker)}))
    with pytest.raises(UserError, match=r"refused: its pickle asks for posix\.system"):
        read_meta(meta)
    with pytest.raises(UserError, match="refused"):
        run_convert(tmp_path / "out" / "ckpt.pt", tmp_path / "myllm" / "model.pt")
    assert not marker.exists()
    assert not (tmp_path / "myllm" / "model.pt").exists()


@pytest.mark.parametrize("case", ["random bytes", "truncated", "empty"])
def test_a_damaged_meta_pkl_is_called_damaged_not_hostile(case, tmp_path):
    """Random bytes and a cut-off pickle ask for no code: not "could run code" (issue 23 #12)."""
    whole = pickle.dumps({"vocab_size": 2, "itos": {0: "a", 1: "b"}, "stoi": {"a": 0, "b": 1}})
    content = {"random bytes": np.random.default_rng(0).bytes(256),
               "truncated": whole[: len(whole) // 2], "empty": b""}[case]  # fmt: skip
    meta = tmp_path / "meta.pkl"
    meta.write_bytes(content)
    with pytest.raises(UserError, match="is not a whole pickle") as refused:
        read_meta(meta)
    message = str(refused.value)
    assert "could run code" not in message and "--meta" in message and "\n" not in message


def test_bias_on_q_k_v_is_refused(tmp_path):
    write_nanogpt_run(tmp_path / "out", bias=True)
    with pytest.raises(UserError, match="bias=True: it has a bias on q, k and v"):
        run_convert(tmp_path / "out" / "ckpt.pt", tmp_path / "myllm" / "model.pt")


def damaged(payload: dict, case: str) -> dict:
    """nanoGPT's dict with one part missing, mistyped or out of shape."""
    model, args = payload["model"], payload["model_args"]
    wte = "transformer.wte.weight"
    changes = {
        "weight missing": lambda: model.pop("transformer.h.1.mlp.c_fc.weight"),
        "weight mistyped": lambda: model.__setitem__(wte, "not a tensor"),
        "weight reshaped": lambda: model.__setitem__(wte, model[wte][:, :5]),
        "c_attn not 3 parts": lambda: model.__setitem__(
            "transformer.h.0.attn.c_attn.weight", torch.zeros(31, 32)
        ),
        "model_args key missing": lambda: args.pop("n_layer"),
        "model_args mistyped": lambda: args.__setitem__("n_embd", "wide"),
        "zero heads": lambda: args.__setitem__("n_head", 0),
        "model not a dict": lambda: payload.__setitem__("model", [1, 2]),
        "model_args not a dict": lambda: payload.__setitem__("model_args", 3),
        "iter_num mistyped": lambda: payload.__setitem__("iter_num", "many"),
        "best_val_loss mistyped": lambda: payload.__setitem__("best_val_loss", [1.0]),
    }
    changes[case]()
    return payload


@pytest.mark.parametrize(
    "case",
    [
        "weight missing", "weight mistyped", "weight reshaped", "c_attn not 3 parts",
        "model_args key missing", "model_args mistyped", "zero heads", "model not a dict",
        "model_args not a dict", "iter_num mistyped", "best_val_loss mistyped",
    ],
)  # fmt: skip
def test_a_damaged_nanogpt_checkpoint_is_one_line_and_writes_nothing(tmp_path, case):
    write_nanogpt_run(tmp_path / "out")
    source = tmp_path / "out" / "ckpt.pt"
    payload = torch.load(source, weights_only=True)
    torch.save(damaged(payload, case), source)
    destination = tmp_path / "myllm" / "model.pt"
    with pytest.raises(UserError) as refused:
        run_convert(source, destination)
    assert "\n" not in str(refused.value) and str(source) in str(refused.value)
    assert not destination.exists() and not (destination.parent / "tokenizer.json").exists()


@pytest.mark.parametrize("case", ["moments missing", "moments reshaped", "not a dict"])
def test_an_unfamiliar_optimizer_state_converts_the_weights_only(tmp_path, capsys, case):
    write_nanogpt_run(tmp_path / "out")
    source = tmp_path / "out" / "ckpt.pt"
    payload = torch.load(source, weights_only=True)
    moments = payload["optimizer"]["state"]
    if case == "moments missing":
        moments.pop(3)
    elif case == "moments reshaped":
        moments[0]["exp_avg"] = moments[0]["exp_avg"][:2]
    else:
        moments[1] = "garbage"
    torch.save(payload, source)
    run_convert(source, tmp_path / "myllm" / "model.pt")
    assert "converted the weights only" in capsys.readouterr().err
    assert read_checkpoint(tmp_path / "myllm" / "model.pt").optimizer is None
