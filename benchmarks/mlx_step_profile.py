"""Profile the MLX training step and forward of the default GPT, end to end and op by op.

End to end, through the real trainers (myllm.backend.registry.load_backend(...).Trainer) and the
real Decoder, interleaved torch, mlx, mlx, torch, ... round by round so that a noisy machine slows
both alike; medians are reported, and the mlx/torch ratios are taken in this one process:

- training: `Trainer.train_step` on the same batches, forced with `Trainer.to_host`;
- forward: the model in eval mode on a batch, forced (what `myllm bench` times);
- evaluate: `Trainer.evaluate` on one batch (MLX: its compiled loss);
- generation without a KV cache: `generate_tokens(..., use_kv_cache=False)`, tokens/s.

Op by op (MLX only, torch alongside where it has the same op), each op at the shape it has in
the default model, timed forward and forward + backward, and multiplied by how often a training
step runs it: matmuls (OpenBLAS), attention (explicit vs mx.fast.scaled_dot_product_attention),
dropout's random bits, LayerNorm, GELU, softmax, cross-entropy, gradient clip + AdamW update,
host <-> device copies, and the split of a step between building the lazy graph in Python and
evaluating it. Ops are timed round-robin, so drift spreads over all of them. Results are printed
and written as JSON.

    .venv/bin/python benchmarks/mlx_step_profile.py [--rounds 5] [--gen-tokens 32]

The OpenBLAS kernel set in use (see benchmarks/README.md, OPENBLAS_CORETYPE) is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# torch before myllm_mlx: myllm_mlx loads OpenBLAS with RTLD_GLOBAL, and a torch imported after
# that routes its own sgemm calls to OpenBLAS instead of its MKL.
import torch  # isort: skip

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import myllm_mlx  # noqa: F401  (loads the system BLAS before anything imports mlx.core)

# isort: split
import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_map

from myllm.backend.registry import load_backend
from myllm.config.settings import ModelConfig, TrainConfig
from myllm.generate.loop import generate_tokens
from myllm.generate.sampling import SamplingSettings
from myllm_mlx.blas import blas_in_use, openblas_core

RESULTS = Path(__file__).resolve().parent / "results" / "mlx_step_profile.json"


def make_batches(config: ModelConfig, batch_size: int, count: int, seed: int):
    """`count` random (inputs, targets) batches [B, T] of int64 token ids."""
    rng = np.random.default_rng(seed)
    windows = rng.integers(0, config.vocab_size, (count, batch_size, config.max_seq_len + 1))
    return [(w[:, :-1], w[:, 1:]) for w in windows]


def median_ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1e3, 3)


# --- end to end, through the real trainers ---


class EndToEnd:
    """One backend's Trainer and Decoder, and a closure per measurement."""

    def __init__(self, name: str, config: ModelConfig, args, batches):
        backend = load_backend(name)
        train_config = TrainConfig(
            batch_size=args.batch_size, block_size=config.max_seq_len, device="cpu", seed=args.seed
        )
        self.name = name
        self.trainer = backend.Trainer(config, train_config)
        self.decoder = self.trainer.decoder()
        self.batches = batches
        self.gen_tokens = args.gen_tokens
        self.seed = args.seed

    def train(self) -> None:
        x, y = self.batches[0]
        self.trainer.to_host(list(self.trainer.train_step(x, y, TrainConfig.lr)))

    def forward(self) -> None:
        self.trainer.model.eval()
        x = self.trainer.to_device(self.batches[1][0])
        if self.name == "mlx":
            mx.eval(self.trainer.model(x))
        else:
            with torch.inference_mode():
                self.trainer.model(x)

    def evaluate(self) -> None:
        self.trainer.evaluate(self.batches[1:2])

    def generate_no_cache(self) -> None:
        self.trainer.model.eval()
        settings = SamplingSettings(temperature=1.0, max_new_tokens=self.gen_tokens)
        rng = np.random.default_rng(self.seed)
        for _ in generate_tokens(self.decoder, [0], settings, rng, 1, use_kv_cache=False):
            pass


def end_to_end(config: ModelConfig, args) -> dict:
    batches = make_batches(config, args.batch_size, 2, args.seed)
    benches = {name: EndToEnd(name, config, args, batches) for name in ("torch", "mlx")}
    kinds = ("train", "forward", "evaluate", "generate_no_cache")
    for bench in benches.values():  # warm-up: compiles, allocator caches, every length
        for kind in kinds:
            getattr(bench, kind)()
    seconds = {name: {kind: [] for kind in kinds} for name in benches}
    for round_index in range(args.rounds):
        order = list(benches) if round_index % 2 == 0 else list(reversed(benches))
        for kind in kinds:
            for name in order:
                start = time.perf_counter()
                getattr(benches[name], kind)()
                seconds[name][kind].append(time.perf_counter() - start)
        print(f"end-to-end round {round_index + 1}/{args.rounds}", flush=True)
    tokens = {
        "train": args.batch_size * config.max_seq_len,
        "forward": args.batch_size * config.max_seq_len,
        "evaluate": args.batch_size * config.max_seq_len,
        "generate_no_cache": args.gen_tokens,
    }
    result = {
        name: {
            kind: {
                "tokens_per_second": round(tokens[kind] / statistics.median(times), 1),
                "seconds": [round(t, 4) for t in times],
            }
            for kind, times in per_kind.items()
        }
        for name, per_kind in seconds.items()
    }
    result["mlx_over_torch"] = {
        kind: round(
            result["mlx"][kind]["tokens_per_second"] / result["torch"][kind]["tokens_per_second"], 3
        )
        for kind in kinds
    }
    result["step_graph"] = step_graph_split(benches["mlx"].trainer, batches[0], args.rounds)
    return result


def step_graph_split(trainer, batch, rounds: int) -> dict:
    """Where a real MLX train_step's time goes: host -> device ids, calling the compiled step
    (returns lazy arrays: Python-side work), mx.eval of the state (the computation), to_host."""
    x, y = batch
    parts = {"to_device": [], "compiled_step_call": [], "eval": [], "to_host": []}
    trainer.model.train()
    for _ in range(rounds):
        t0 = time.perf_counter()
        xd, yd = trainer.to_device(x), trainer.to_device(y)
        mx.eval(xd, yd)
        t1 = time.perf_counter()
        trainer.optimizer.learning_rate = TrainConfig.lr
        loss, grad_norm = trainer.compiled_step(xd, yd, None)
        t2 = time.perf_counter()
        mx.eval(trainer.state, loss, grad_norm)
        t3 = time.perf_counter()
        trainer.to_host([loss, grad_norm])
        t4 = time.perf_counter()
        for part, (start, end) in zip(parts, ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True):
            parts[part].append(end - start)
    return {part: median_ms(times) for part, times in parts.items()}


# --- op by op ---


def grad_of(function: Callable, *arrays):
    """Forward + backward of sum(function(*arrays)) with respect to every array."""
    return mx.grad(lambda *a: function(*a).sum(), argnums=tuple(range(len(arrays))))(*arrays)


def mlx_ops(model, config: ModelConfig, batch_size: int) -> dict[str, tuple[Callable, int]]:
    """name -> (a closure returning MLX arrays to evaluate, how many times a training step runs
    it). Shapes and weights are the model's own."""
    from myllm_mlx import cpu_math

    B, T, D, H = batch_size, config.max_seq_len, config.d_model, config.n_heads
    L, hd, F, V = config.n_layers, D // H, config.d_ff, config.vocab_size
    key = mx.random.key(0)
    x = mx.random.normal((B, T, D), key=key)
    h = mx.random.normal((B, T, F), key=key)
    q, k, v = (mx.random.normal((B, H, T, hd), key=kk) for kk in mx.random.split(key, 3))
    scores = mx.random.normal((B, H, T, T), key=key)
    logits = mx.random.normal((B * T, V), key=key)
    targets = mx.random.randint(0, V, (B * T,), key=key)
    block = model.blocks[0]
    mx.eval(x, h, q, k, v, scores, logits, targets)
    scale = 1.0 / hd**0.5

    def fused(q, k, v):
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask="causal")

    def explicit(dropout_p: float):
        return lambda q, k, v: cpu_math.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout_p, is_causal=True
        )

    def mlx_softmax(s):
        return mx.softmax(s, axis=-1, precise=True)

    params = model.trainable_parameters()
    grads = tree_map(lambda p: p * 1e-3, params)
    optimizer = optim.AdamW(learning_rate=3e-4, betas=[0.9, 0.95], bias_correction=True)
    optimizer.init(params)
    mx.eval(grads, optimizer.state)

    def adamw():
        clipped, _ = optim.clip_grad_norm(grads, 1.0)
        return optimizer.apply_gradients(clipped, params)

    compiled_adamw = mx.compile(adamw, inputs=[optimizer.state], outputs=[optimizer.state])
    host_batch = np.zeros((B, T), np.int64)
    # Counts per training step: per layer 4 d->d projections, linear1, linear2, 1 attention,
    # 2 LayerNorms, 1 GELU, 3 dropouts on [B,T,D]-sized tensors (1 attention out, 1 FFN out,
    # + per-block residual) counted as 2 per layer + 1 at the embedding; 1 attention-weight
    # dropout; + ln_final, lm_head, cross-entropy, one AdamW over all parameters.
    return {
        "matmul d->d projection fwd+bwd": (lambda: grad_of(block.attention.W_q, x), 4 * L),
        "matmul linear1 d->4d fwd+bwd": (lambda: grad_of(block.feed_forward.linear1, x), L),
        "matmul linear2 4d->d fwd+bwd": (lambda: grad_of(block.feed_forward.linear2, h), L),
        "matmul lm_head (tied) fwd+bwd": (
            lambda: grad_of(model.token_embedding.as_linear, x),
            1,
        ),
        "attention explicit, dropout 0.1 fwd+bwd (training)": (
            lambda: grad_of(explicit(config.dropout), q, k, v),
            L,
        ),
        "attention fused SDPA fwd+bwd (no dropout possible)": (lambda: grad_of(fused, q, k, v), 0),
        "attention fused SDPA fwd (evaluation)": (lambda: fused(q, k, v), 0),
        "attention explicit, our softmax fwd": (lambda: explicit(0.0)(q, k, v), 0),
        "softmax ours fwd+bwd": (lambda: grad_of(cpu_math.softmax, scores), 0),
        "softmax mx.softmax fwd+bwd": (lambda: grad_of(mlx_softmax, scores), 0),
        "dropout bits [B,T,D]": (lambda: mx.random.bernoulli(0.9, (B, T, D)), 2 * L + 1),
        "dropout bits [B,T,4D]": (lambda: mx.random.bernoulli(0.9, (B, T, F)), L),
        "dropout bits [B,H,T,T]": (lambda: mx.random.bernoulli(0.9, (B, H, T, T)), L),
        "LayerNorm fwd+bwd": (lambda: grad_of(block.ln1, x), 2 * L + 1),
        "GELU ours fwd+bwd": (lambda: grad_of(cpu_math.gelu, h), L),
        "GELU nn.gelu (mx.erf) fwd+bwd": (lambda: grad_of(nn.gelu, h), 0),
        "residual add [B,T,D]": (lambda: x + x, 2 * L),
        "cross-entropy fwd+bwd": (
            lambda: mx.grad(lambda z: nn.losses.cross_entropy(z, targets, reduction="mean"))(
                logits
            ),
            1,
        ),
        "clip_grad_norm + AdamW, eager": (adamw, 0),
        "clip_grad_norm + AdamW, compiled": (compiled_adamw, 1),
        "host->device batch ids": (lambda: mx.array(host_batch.astype(np.int32)), 2),
        "device->host 2 scalars (to_host)": (
            lambda: mx.array(mx.stack([x[0, 0, 0], x[0, 0, 1]]).tolist()),
            1,
        ),
    }


def torch_ops(config: ModelConfig, batch_size: int) -> dict[str, Callable]:
    """The torch counterparts of some MLX ops above (same names), at the same shapes."""
    import torch.nn.functional as F

    B, T, D, H = batch_size, config.max_seq_len, config.d_model, config.n_heads
    hd, F_ = D // H, config.d_ff
    generator = torch.Generator().manual_seed(0)

    def leaf(*shape):
        return torch.randn(*shape, generator=generator).requires_grad_()

    x, h = leaf(B, T, D), leaf(B, T, F_)
    q, k, v = leaf(B, H, T, hd), leaf(B, H, T, hd), leaf(B, H, T, hd)
    scores = leaf(B, H, T, T)
    linear1, ln = torch.nn.Linear(D, F_), torch.nn.LayerNorm(D)

    def backward(out):
        out.sum().backward()

    def attention(p):
        return lambda: backward(
            F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        )

    return {
        "matmul linear1 d->4d fwd+bwd": lambda: backward(linear1(x)),
        "attention explicit, dropout 0.1 fwd+bwd (training)": attention(config.dropout),
        "attention fused SDPA fwd+bwd (no dropout possible)": attention(0.0),
        "softmax mx.softmax fwd+bwd": lambda: backward(torch.softmax(scores, -1)),
        "dropout bits [B,T,4D]": lambda: torch.empty(B, T, F_).bernoulli_(0.9),
        "LayerNorm fwd+bwd": lambda: backward(ln(x)),
        "GELU ours fwd+bwd": lambda: backward(F.gelu(h)),
    }


def op_breakdown(model, config: ModelConfig, args) -> dict:
    """Median ms of each op (round-robin over ops), and its estimated ms per training step."""
    ops = mlx_ops(model, config, args.batch_size)
    torch_side = torch_ops(config, args.batch_size)
    for function, _ in ops.values():
        mx.eval(function())
    for function in torch_side.values():
        function()
    seconds = {name: [] for name in ops}
    torch_seconds = {name: [] for name in torch_side}
    for _ in range(args.op_rounds):
        for name, (function, _) in ops.items():
            start = time.perf_counter()
            mx.eval(function())
            seconds[name].append(time.perf_counter() - start)
            if name in torch_side:
                start = time.perf_counter()
                torch_side[name]()
                torch_seconds[name].append(time.perf_counter() - start)
    rows = {}
    for name, (_, per_step) in ops.items():
        ms = median_ms(seconds[name])
        rows[name] = {"ms": ms, "per_step": per_step, "ms_per_step": round(ms * per_step, 1)}
        if name in torch_seconds:
            rows[name]["torch_ms"] = median_ms(torch_seconds[name])
    return rows


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "mlx": mx.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5, help="end-to-end alternating rounds")
    parser.add_argument("--op-rounds", type=int, default=5, help="round-robin rounds of ops")
    parser.add_argument("--gen-tokens", type=int, default=32, help="tokens per generation")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--skip-ops", action="store_true", help="end-to-end figures only")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    config = ModelConfig(vocab_size=65)  # the default model: d_model 384, 6 layers, 6 heads
    load_before = os.getloadavg()
    results = end_to_end(config, args)
    ops = None
    if not args.skip_ops:
        from myllm_mlx.model import GPTModel

        mx.random.seed(args.seed)
        model = GPTModel(config)
        model.train()
        mx.eval(model.parameters())
        ops = op_breakdown(model, config, args)
    report = {
        "benchmark": "mlx_step_profile",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": versions(),
        "device": {"cpu": cpu_name(), "cores": os.cpu_count(), "system": platform.system()},
        # Other processes on the machine: the 1-minute load average before and after timing.
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "blas": blas_in_use(),
        "openblas_core": openblas_core(),
        "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
        "dtype": "float32",
        "model": config.to_dict(),
        "batch_size": args.batch_size,
        "end_to_end": results,
        "ops": ops,
    }
    print(f"\n{'':<20}{'torch':>10}{'mlx':>10}{'mlx/torch':>11}   (tokens/s, medians)")
    for kind, ratio in results["mlx_over_torch"].items():
        torch_rate = results["torch"][kind]["tokens_per_second"]
        mlx_rate = results["mlx"][kind]["tokens_per_second"]
        print(f"{kind:<20}{torch_rate:>10.0f}{mlx_rate:>10.0f}{ratio:>10.2f}x")
    print(f"MLX train_step split, ms: {results['step_graph']}")
    if ops:
        print(f"\n{'op':<54}{'ms':>8}{'x/step':>7}{'ms/step':>9}{'torch ms':>9}")
        for name, row in ops.items():
            torch_ms = f"{row['torch_ms']:>9.1f}" if "torch_ms" in row else ""
            print(
                f"{name:<54}{row['ms']:>8.1f}{row['per_step']:>7}{row['ms_per_step']:>9.1f}{torch_ms}"
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
