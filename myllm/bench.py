"""The benchmark behind `myllm bench` (DESIGN §7): every backend, same model, same batches, one run.

Each backend builds its real Trainer and Decoder on the same ModelConfig and is fed the same numpy
batches. After a warm-up, the measurements are interleaved (torch, mlx, torch, mlx, ...) so that
a machine that speeds up or slows down during the run affects both alike, and medians of the
repeats are reported. MFU is taken against a matmul peak measured in the same run with each
backend's own matmul, so it says how much of what *this* framework can do on *this* device the
model gets. The core stays framework-free: torch and mlx are imported inside the two `*Ops`
classes only, after the backend registry has loaded the backend.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from myllm.backends import Backend, backend_names, is_installed, load_backend
from myllm.config import ModelConfig, TrainConfig
from myllm.data import BatchSampler
from myllm.errors import UserError
from myllm.generation import generate_tokens
from myllm.precision import check_compile, check_dtype
from myllm.sampling import SamplingSettings

VOCAB_SIZE = 65  # Tiny Shakespeare's character vocabulary
SYNTHETIC_TOKENS = 200_000  # speed does not depend on the text: seeded random tokens
BATCHED_SAMPLES = 8
PROMPT_IDS = [0]  # generation starts from a 1-token prompt
MATMUL_SIZE = 2048  # square matmul for the measured peak, in the dtype in use
SWEEP_SQUARES = (512, 1024)  # smaller squares of the peak's sweep (those below matmul_size)
MATMUL_SECONDS = 0.1  # each timed matmul sample runs about this long
FLOP_FORMULA = (
    "training FLOPs/token = 6*N + 12*n_layers*T*d_model; forward FLOPs/token = 2*N + "
    "4*n_layers*T*d_model; N = non-embedding parameters (attention, feed-forward, biases, "
    "LayerNorms) + d_model*vocab for the lm_head matmul (its weight is the tied token "
    "embedding, so it is not a parameter of its own, but it is a full matmul per token); "
    "T = block_size; attention is counted over all T keys (PaLM's convention: the causal half "
    "is not subtracted); MFU = achieved FLOP/s / measured matmul peak FLOP/s, the peak being "
    "the best of a sweep of matmuls (squares and the model's own GEMM shapes) in the dtype in use"
)


@dataclass(frozen=True)
class Preset:
    """A model and batch size for `--config`, with step counts that keep the run short."""

    d_model: int
    n_layers: int
    n_heads: int
    block_size: int
    batch_size: int
    steps: int
    warmup: int
    repeats: int


PRESETS = {
    "tiny": Preset(d_model=64, n_layers=2, n_heads=4, block_size=32, batch_size=8,
                   steps=10, warmup=2, repeats=3),
    "baby": Preset(d_model=128, n_layers=4, n_heads=4, block_size=64, batch_size=12,
                   steps=5, warmup=2, repeats=3),
    "default": Preset(d_model=384, n_layers=6, n_heads=6, block_size=128, batch_size=16,
                      steps=1, warmup=1, repeats=3),
}  # fmt: skip


@dataclass
class BenchSettings:
    """What `myllm bench` was asked for; `None` means the preset's value."""

    backends: list[str] | None = None
    config: str = "default"
    d_model: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    block_size: int | None = None
    batch_size: int | None = None
    steps: int | None = None
    warmup: int | None = None
    repeats: int | None = None
    gen_tokens: int = 128
    device: str = "auto"
    seed: int = TrainConfig.seed
    matmul_size: int = MATMUL_SIZE  # not a CLI flag: the tests use a small one to stay fast
    dtype: str = "auto"  # one value of `myllm bench --dtype` (the CLI runs each in turn)
    compile: str = "auto"  # one value of `myllm bench --compile`


@dataclass
class BenchPlan:
    """The resolved run: model, batch size and how many steps each measurement takes."""

    config_name: str
    model_config: ModelConfig
    batch_size: int
    steps: int
    warmup: int
    repeats: int
    gen_tokens: int
    device: str
    seed: int
    matmul_size: int
    dtype: str = "auto"
    compile: str = "auto"

    @property
    def block_size(self) -> int:
        return self.model_config.max_seq_len

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config_name,
            "model_config": self.model_config.to_dict(),
            "batch_size": self.batch_size,
            "block_size": self.block_size,
            "steps": self.steps,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "gen_tokens": self.gen_tokens,
            "batched_samples": BATCHED_SAMPLES,
            "prompt_tokens": len(PROMPT_IDS),
            "matmul_size": self.matmul_size,
            "device": self.device,
            "seed": self.seed,
            "dtype": self.dtype,  # as asked; each backend's report has the resolved one
            "compile": self.compile,
            "data": f"synthetic: {SYNTHETIC_TOKENS} seeded random tokens, vocab {VOCAB_SIZE}",
        }


def resolve_plan(settings: BenchSettings) -> BenchPlan:
    """The preset of `settings.config` with the given overrides, validated."""
    if settings.config not in PRESETS:
        raise UserError(
            f"unknown bench config {settings.config!r}: use one of {', '.join(PRESETS)}"
        )
    preset = PRESETS[settings.config]

    def chosen(name: str) -> Any:
        value = getattr(settings, name)
        return getattr(preset, name) if value is None else value

    for name in ("steps", "repeats", "gen_tokens"):
        _require_count(name, chosen(name), minimum=1)
    _require_count("warmup", chosen("warmup"), minimum=0)
    _require_count("batch_size", chosen("batch_size"), minimum=1)
    _require_count("matmul_size", settings.matmul_size, minimum=1)
    model_config = ModelConfig(
        vocab_size=VOCAB_SIZE,
        d_model=chosen("d_model"),
        n_heads=chosen("n_heads"),
        n_layers=chosen("n_layers"),
        max_seq_len=chosen("block_size"),
    )
    return BenchPlan(
        config_name=settings.config,
        model_config=model_config,
        batch_size=chosen("batch_size"),
        steps=chosen("steps"),
        warmup=chosen("warmup"),
        repeats=chosen("repeats"),
        gen_tokens=settings.gen_tokens,
        device=settings.device,
        seed=settings.seed,
        matmul_size=settings.matmul_size,
        dtype=check_dtype(settings.dtype),
        compile=check_compile(settings.compile),
    )


def _require_count(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or value < minimum:
        flag = "--" + name.replace("_", "-")
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}: fix {flag}")


# --- model FLOPs ---


def flop_parameter_count(config: ModelConfig) -> int:
    """N of the FLOP formula: non-embedding parameters + the tied lm_head's d_model * vocab."""
    d_model, d_ff = config.d_model, config.d_ff
    attention = 4 * d_model * d_model + d_model  # W_q, W_k, W_v without bias; W_o with bias
    feed_forward = 2 * d_model * d_ff + d_ff + d_model  # linear1 and linear2 with biases
    layer_norms = 2 * 2 * d_model  # ln1 and ln2, weight and bias
    final_norm = 2 * d_model
    lm_head = d_model * config.vocab_size
    return config.n_layers * (attention + feed_forward + layer_norms) + final_norm + lm_head


def model_flops_per_token(config: ModelConfig, training: bool) -> float:
    """Model FLOPs per token (see FLOP_FORMULA): 6N + 12 L T d to train, 2N + 4 L T d forward.

    A multiply-add is 2 FLOPs; the backward pass costs twice the forward. The attention term is
    the QK^T and AV matmuls over a sequence of T = max_seq_len (= block_size here).
    """
    attention = 4 * config.n_layers * config.max_seq_len * config.d_model  # forward
    per_token = 2 * flop_parameter_count(config) + attention
    return float(3 * per_token if training else per_token)


# --- machine and process ---


def cpu_name() -> str:
    """The CPU's marketing name: /proc/cpuinfo on Linux, sysctl on macOS, else platform."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    if sys.platform == "darwin":
        import subprocess

        result = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True
        )
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    return {
        "os": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def load_average() -> tuple[float, float, float]:
    """1, 5 and 15 minute load averages (zeros where the OS has none): is anything else running?"""
    return os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)


def reset_process_peak_rss() -> bool:
    """Reset the process's peak RSS (Linux VmHWM) to its current RSS; False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def process_peak_rss_bytes() -> int:
    """Peak resident memory of this process: VmHWM on Linux, else getrusage's ru_maxrss."""
    status = Path("/proc/self/status")
    if status.is_file():
        match = re.search(r"^VmHWM:\s+(\d+) kB", status.read_text(), re.MULTILINE)
        if match:
            return int(match.group(1)) * 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes, Linux: KiB


# --- the framework-specific parts, imported lazily ---


class TorchOps:
    """torch's side of the timings: waiting for queued work, memory counters, the matmul peak."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.device = trainer.device
        self.rss_resettable = False

    def forward(self, ids, cache=None):
        """Logits of the model for device token ids, no autograd (model already in eval)."""
        import torch

        from myllm_torch.precision import autocast

        with torch.inference_mode(), autocast(self.device, self.trainer.precision.dtype):
            return self.trainer.model(ids, cache)

    def force(self, values: list) -> None:
        """Wait until `values` are computed: torch CPU is eager, CUDA and MPS need a sync."""
        del values
        from myllm_torch.device import synchronize

        synchronize(self.device)

    def force_training(self) -> None:
        self.force([])

    def matmul_operands(self, shape: tuple[int, int, int], dtype: str):
        """[m, k] and [k, n] operands in `dtype` (what autocast feeds the matmuls)."""
        import torch

        from myllm_torch.precision import DTYPES

        m, k, n = shape
        generator = torch.Generator().manual_seed(0)
        a, b = (torch.randn(*size, generator=generator) for size in ((m, k), (k, n)))
        return a.to(self.device, DTYPES[dtype]), b.to(self.device, DTYPES[dtype])

    def matmul(self, a, b):
        import torch

        return torch.matmul(a, b)

    def reset_peak_memory(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.rss_resettable = reset_process_peak_rss()

    def peak_memory_bytes(self) -> int:
        import torch

        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.device.type == "mps":
            return int(torch.mps.driver_allocated_memory())
        return process_peak_rss_bytes()

    def memory_source(self) -> str:
        if self.device.type == "cuda":
            return "torch.cuda.max_memory_allocated (peak of torch's CUDA allocator)"
        if self.device.type == "mps":
            return "torch.mps.driver_allocated_memory (after the repeat: MPS has no peak counter)"
        return _rss_source(self.rss_resettable)

    def gpu_name(self) -> str | None:
        import torch

        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        if self.device.type == "mps":
            return f"Apple GPU via MPS ({cpu_name()})"
        return None

    def blas(self) -> str:
        import torch

        match = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        name = match.group(1) if match else "unknown"
        return f"{name} (torch build); {torch.get_num_threads()} threads"


class MlxOps:
    """MLX's side of the timings: mx.eval forces the lazy graph, mx.get_peak_memory, mx.matmul."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.rss_resettable = False
        self.low_parameters = None  # MLX has no autocast: low-dtype weights swapped in
        if trainer.precision.low:
            from myllm_mlx.precision import cast_parameters

            self.low_parameters = cast_parameters(
                trainer.model.parameters(), trainer.precision.dtype
            )

    def forward(self, ids, cache=None):
        """Logits of the model (MLX records no tape: a plain call is the no-grad forward)."""
        if self.low_parameters is None:
            return self.trainer.model(ids, cache)
        masters = self.trainer.model.parameters()
        self.trainer.model.update(self.low_parameters)
        logits = self.trainer.model(ids, cache)
        self.trainer.model.update(masters)
        return logits

    def force(self, values: list) -> None:
        import mlx.core as mx

        mx.eval(values)

    def force_training(self) -> None:
        """Evaluate the updated weights and optimizer state too, not only the losses."""
        import mlx.core as mx

        optimizer = getattr(self.trainer, "optimizer", None)
        mx.eval(self.trainer.model.parameters(), optimizer.state if optimizer else [])

    def matmul_operands(self, shape: tuple[int, int, int], dtype: str):
        """[m, k] and [k, n] operands in `dtype` (what the low-dtype step feeds its matmuls)."""
        import mlx.core as mx

        from myllm_mlx.precision import DTYPES

        m, k, n = shape
        keys = mx.random.split(mx.random.key(0))
        a, b = (
            mx.random.normal(size, key=key).astype(DTYPES[dtype])
            for size, key in zip(((m, k), (k, n)), keys, strict=True)
        )
        mx.eval(a, b)
        return a, b

    def matmul(self, a, b):
        import mlx.core as mx

        return mx.matmul(a, b)

    def reset_peak_memory(self) -> None:
        import mlx.core as mx

        mx.reset_peak_memory()
        self.rss_resettable = reset_process_peak_rss()

    def peak_memory_bytes(self) -> int:
        import mlx.core as mx

        return int(mx.get_peak_memory())

    def memory_source(self) -> str:
        return "mx.get_peak_memory (peak of MLX's allocator: weights, optimizer state, activations)"

    def gpu_name(self) -> str | None:
        import mlx.core as mx

        if mx.default_device().type != mx.gpu:
            return None
        return str(mx.device_info().get("device_name", "GPU"))

    def blas(self) -> str:
        import myllm_mlx.blas

        blas_in_use = getattr(myllm_mlx.blas, "blas_in_use", None)
        return blas_in_use() if blas_in_use else "unknown (myllm_mlx.blas has no blas_in_use)"


OPS = {"torch": TorchOps, "mlx": MlxOps}


def _rss_source(resettable: bool) -> str:
    if resettable:
        return (
            "process peak RSS (VmHWM, reset before each training repeat; the whole process: "
            "Python, both frameworks and the other backend's resident model)"
        )
    return "process peak RSS since start (getrusage ru_maxrss: not resettable, whole process)"


# --- one backend ---


@contextmanager
def _stopwatch(record: Callable[[float], None]) -> Iterator[None]:
    """Time the block with the garbage collector off (as timeit does); pass seconds to record."""
    gc.disable()
    start = time.perf_counter()
    try:
        yield
    finally:
        record(time.perf_counter() - start)
        gc.enable()


class BackendBench:
    """One backend's Trainer, Decoder and timings; every method runs one measurement."""

    def __init__(self, backend: Backend, plan: BenchPlan, batches: list[tuple[np.ndarray, ...]]):
        self.name = backend.name
        self.plan = plan
        self.batches = batches
        train_config = TrainConfig(
            batch_size=plan.batch_size,
            block_size=plan.block_size,
            device=plan.device,
            seed=plan.seed,
            dtype=plan.dtype,
            compile=plan.compile,
        )
        self.trainer = backend.trainer.Trainer(plan.model_config, train_config)
        self.dtype = self.trainer.precision.dtype
        self.decoder = backend.generate.Decoder(self.trainer.model, self.dtype)
        self.ops = OPS[backend.name](self.trainer)
        self.samples: dict[str, list[float]] = {}
        self.peak_memory = 0
        self.peak_rss = 0
        self.matmul_count = 1
        size = plan.matmul_size
        self.matmul_inputs = self.ops.matmul_operands((size, size, size), self.dtype)
        # The peak is the best of a sweep: the square above, smaller squares, the model's GEMMs.
        self.sweep_inputs = {
            shape: self.ops.matmul_operands(shape, self.dtype) for shape in sweep_shapes(plan)
        }
        self.sweep_counts = dict.fromkeys(self.sweep_inputs, 1)
        self.sweep_seconds: dict[str, list[float]] = {}

    def record(self, kind: str, seconds: float) -> None:
        self.samples.setdefault(kind, []).append(seconds)

    def warm_up(self) -> None:
        """Compile, allocate and fill caches: warm-up steps of every measurement, untimed."""
        for x, y in self.batches[: self.plan.warmup]:
            self.trainer.to_host(list(self.trainer.train_step(x, y, TrainConfig.lr)))
        self.ops.force_training()
        warm_batches = self.batches[: max(1, self.plan.warmup)]
        self.forward_batches(warm_batches)
        short = min(8, self.plan.gen_tokens)
        self.generate(short, use_kv_cache=True, samples=1)
        self.generate(short, use_kv_cache=True, samples=BATCHED_SAMPLES)
        # Full length: without a cache every step has a new sequence length, and MLX compiles
        # its fused GELU once per shape (~7 s over 128 lengths of the default model on CPU).
        self.generate(self.plan.gen_tokens, use_kv_cache=False, samples=1)
        self.decode_steps(min(4, self.plan.block_size))
        self.calibrate_matmul()

    def timed_batches(self, repeat: int) -> list[tuple[np.ndarray, ...]]:
        first = self.plan.warmup + repeat * self.plan.steps
        return self.batches[first : first + self.plan.steps]

    def time_training(self, repeat: int) -> None:
        """`steps` real Trainer.train_step calls, forced at the end with the trainer's to_host."""
        self.trainer.model.train()
        self.ops.reset_peak_memory()
        with _stopwatch(lambda s: self.record("train", s)):
            pending = [
                self.trainer.train_step(x, y, TrainConfig.lr) for x, y in self.timed_batches(repeat)
            ]
            self.trainer.to_host([value for pair in pending for value in pair])
            self.ops.force_training()
        self.peak_memory = max(self.peak_memory, self.ops.peak_memory_bytes())
        self.peak_rss = max(self.peak_rss, process_peak_rss_bytes())

    def forward_batches(self, batches) -> None:
        self.trainer.model.eval()
        outputs = [self.ops.forward(self.trainer.to_device(x)) for x, _ in batches]
        self.ops.force(outputs)

    def time_forward(self, repeat: int) -> None:
        batches = self.timed_batches(repeat)
        with _stopwatch(lambda s: self.record("forward", s)):
            self.forward_batches(batches)

    def generate(self, tokens: int, use_kv_cache: bool, samples: int) -> None:
        """The shared decoding loop, sampling included, as `myllm generate` runs it."""
        self.trainer.model.eval()  # the Decoder set eval once; train_step has set train since
        settings = SamplingSettings(temperature=1.0, max_new_tokens=tokens)
        rng = np.random.default_rng(self.plan.seed)
        for _ in generate_tokens(self.decoder, PROMPT_IDS, settings, rng, samples, use_kv_cache):
            pass

    def time_generation(self, kind: str, use_kv_cache: bool, samples: int) -> None:
        with _stopwatch(lambda s: self.record(kind, s)):
            self.generate(self.plan.gen_tokens, use_kv_cache, samples)

    def decode_steps(self, positions: int) -> tuple[float, float]:
        """Seconds of `positions` cached 1-token steps: decoder.last_logits vs the bare model.

        The two run in lockstep on two caches, so both see the same positions and machine state;
        the difference is the Decoder's own cost (host -> device ids, slicing, device -> host).
        """
        self.trainer.model.eval()
        tokens = self.batches[0][0][:1, :positions].astype(np.int64)  # [1, positions]
        device_ids = [self.trainer.to_device(tokens[:, p : p + 1]) for p in range(positions)]
        decoder_cache = self.decoder.new_cache(1)
        model_cache = self.decoder.new_cache(1)
        decoder_seconds = model_seconds = 0.0
        for position in range(positions):
            start = time.perf_counter()
            self.decoder.last_logits(tokens[:, position : position + 1], decoder_cache)
            middle = time.perf_counter()
            self.ops.force([self.ops.forward(device_ids[position], model_cache)])
            end = time.perf_counter()
            decoder_seconds += middle - start
            model_seconds += end - middle
        return decoder_seconds, model_seconds

    def time_decode_steps(self) -> None:
        positions = min(self.plan.gen_tokens, self.plan.block_size)
        gc.disable()
        try:
            decoder_seconds, model_seconds = self.decode_steps(positions)
        finally:
            gc.enable()
        self.record("decode_step", decoder_seconds / positions)
        self.record("model_step", model_seconds / positions)

    def run_matmuls(self, count: int, inputs=None) -> None:
        a, b = inputs or self.matmul_inputs
        products = []
        for _ in range(count):
            products.append(self.ops.matmul(a, b))
            if len(products) == 8:  # bound the memory of lazily queued results
                self.ops.force(products)
                products = []
        self.ops.force(products)

    def calibrate_matmul(self) -> None:
        """Choose how many matmuls make one timed repeat last about MATMUL_SECONDS."""
        self.run_matmuls(1)
        start = time.perf_counter()
        self.run_matmuls(1)
        one = time.perf_counter() - start
        self.matmul_count = max(1, min(10_000, math.ceil(MATMUL_SECONDS / max(one, 1e-9))))
        for shape, inputs in self.sweep_inputs.items():
            self.run_matmuls(1, inputs)
            start = time.perf_counter()
            self.run_matmuls(1, inputs)
            one = time.perf_counter() - start
            # A quarter of the square's time each: the sweep adds about as much time as it.
            count = max(1, min(10_000, math.ceil(MATMUL_SECONDS / 4 / max(one, 1e-9))))
            self.sweep_counts[shape] = count

    def time_matmul(self) -> None:
        with _stopwatch(lambda s: self.record("matmul", s / self.matmul_count)):
            self.run_matmuls(self.matmul_count)
        for shape, inputs in self.sweep_inputs.items():
            count = self.sweep_counts[shape]
            samples = self.sweep_seconds.setdefault("x".join(map(str, shape)), [])
            with _stopwatch(lambda s, samples=samples, count=count: samples.append(s / count)):
                self.run_matmuls(count, inputs)

    def description(self) -> dict[str, Any]:
        """Device, versions, BLAS, compile flag and memory source of this backend."""
        return {
            "device": self.trainer.describe_device(),
            "gpu": self.ops.gpu_name(),
            "versions": self.trainer.versions(),
            "blas": self.ops.blas(),
            "dtype": self.dtype,
            "compiled": bool(getattr(self.trainer, "compiled", False)),
            "precision": self.trainer.precision.describe(),  # what runs compiled, in which dtype
            "matmul_sweep_seconds": self.sweep_seconds,  # m x k x n -> seconds per matmul
            "memory_source": self.ops.memory_source(),
            "rss_source": _rss_source(self.ops.rss_resettable),
            "matmuls_per_repeat": self.matmul_count,
        }


# --- the run ---


def select_backends(names: list[str] | None) -> tuple[list[tuple[str, Backend]], dict[str, str]]:
    """The backends to run and, when none were named, why each other backend is skipped.

    A named backend that cannot run is a UserError; unnamed ones are skipped with the reason.
    """
    explicit = names is not None
    chosen = names if explicit else backend_names()
    if explicit and not chosen:
        raise UserError("--backends is empty: use e.g. --backends torch,mlx")
    for name in chosen:  # every name is checked before any framework is imported
        if name not in backend_names():
            raise UserError(f"unknown backend {name!r}: use one of {', '.join(backend_names())}")
    # torch before mlx whatever the order given: myllm_mlx loads the system OpenBLAS globally, and
    # a torch imported after it could resolve its BLAS calls there instead of its own MKL.
    chosen = [name for name in backend_names() if name in chosen]
    loaded: list[tuple[str, Backend]] = []
    skipped: dict[str, str] = {}
    for name in chosen:
        if not explicit and not is_installed(name):
            skipped[name] = "not installed"
            continue
        try:
            loaded.append((name, load_backend(name)))
        except ImportError as error:
            reason = f"its modules do not import yet ({error})"
            if explicit:
                raise UserError(f"backend {name!r} cannot run: {reason}") from None
            skipped[name] = reason
    if not loaded:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped.items())
        raise UserError(f"no backend can run ({reasons}): install torch or mlx")
    return loaded, skipped


def make_batches(plan: BenchPlan) -> list[tuple[np.ndarray, np.ndarray]]:
    """Warm-up and timed batches from the shared sampler: identical for every backend."""
    rng = np.random.default_rng(plan.seed)
    tokens = rng.integers(0, VOCAB_SIZE, size=SYNTHETIC_TOKENS, dtype=np.int32)
    sampler = BatchSampler(tokens, plan.block_size, plan.batch_size, plan.seed)
    count = max(1, plan.warmup) + plan.repeats * plan.steps
    return [sampler.batch(step) for step in range(count)]


MEASUREMENTS: list[tuple[str, Callable[[BackendBench, int], None]]] = [
    ("training", lambda bench, repeat: bench.time_training(repeat)),
    ("forward", lambda bench, repeat: bench.time_forward(repeat)),
    ("generation, KV cache", lambda b, _: b.time_generation("generate_kv", True, 1)),
    ("generation, no cache", lambda b, _: b.time_generation("generate_no_kv", False, 1)),
    (
        f"generation, {BATCHED_SAMPLES} samples",
        lambda b, _: b.time_generation("generate_batched", True, BATCHED_SAMPLES),
    ),
    ("decode-step overhead", lambda bench, _: bench.time_decode_steps()),
]


def run_bench(
    settings: BenchSettings, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run every selected backend, interleaved after warm-up; return the report (JSON-ready)."""
    progress = progress or (lambda message: None)
    load_at_start = load_average()
    plan = resolve_plan(settings)
    loaded, skipped = select_backends(settings.backends)
    batches = make_batches(plan)
    benches = []
    for name, backend in loaded:
        progress(f"building and warming up {name}")
        bench = BackendBench(backend, plan, batches)
        bench.warm_up()
        benches.append(bench)
    gc.collect()  # once: a full collection with both frameworks loaded takes ~0.1 s
    for label, measure in MEASUREMENTS:
        for repeat in range(plan.repeats):
            for bench in benches:
                progress(f"{label}: {bench.name} {repeat + 1}/{plan.repeats}")
                measure(bench, repeat)
            # The peak is sampled throughout the run, not in one phase that a burst of other
            # work on the machine could spoil; its median is robust to a few slow samples.
            for bench in benches:
                bench.time_matmul()
    return build_report(plan, benches, skipped, load_at_start)


def sweep_shapes(plan: BenchPlan) -> list[tuple[int, int, int]]:
    """(m, k, n) of the matmul peak's sweep besides the big square: smaller squares and the
    model's own GEMMs (forward: tokens x d_model by the projections, the feed-forward and the
    lm_head; backward's weight gradients: d_model x tokens by tokens x d_model / d_ff)."""
    tokens = plan.batch_size * plan.block_size
    config = plan.model_config
    d_model, d_ff, vocab = config.d_model, config.d_ff, config.vocab_size
    squares = [(s, s, s) for s in SWEEP_SQUARES if s < plan.matmul_size]
    model = [
        (tokens, d_model, d_model),
        (tokens, d_model, d_ff),
        (tokens, d_ff, d_model),
        (tokens, d_model, vocab),
        (d_model, tokens, d_model),
        (d_model, tokens, d_ff),
    ]
    return squares + list(dict.fromkeys(model))


def matmul_peak(size: int, square_seconds: float, sweep_seconds: dict[str, list[float]]) -> float:
    """The best FLOP/s of the sweep's medians: the square and every other m x k x n shape."""
    rates = [2 * size**3 / square_seconds]
    for name, seconds in sweep_seconds.items():
        m, k, n = (int(part) for part in name.split("x"))
        rates.append(2 * m * k * n / statistics.median(seconds))
    return max(rates)


def generation_paths(plan: BenchPlan) -> dict[str, str]:
    """Which decoding path each generation figure took (DESIGN §4: cache, then recompute)."""
    cached = max(0, min(plan.gen_tokens, plan.block_size - len(PROMPT_IDS) + 1))
    if cached == plan.gen_tokens:
        kv_path = f"KV cache: {cached} one-token steps"
    else:
        kv_path = (
            f"KV cache for the first {cached} tokens, then recompute on the last "
            f"{plan.block_size} tokens for {plan.gen_tokens - cached} (past block_size)"
        )
    return {
        "generate_kv": kv_path,
        "generate_no_kv": "no cache: the whole context (up to block_size) recomputed per token",
        "generate_batched": f"{BATCHED_SAMPLES} samples in one batch; {kv_path}",
    }


def figures_of(bench: BackendBench, plan: BenchPlan) -> dict[str, float]:
    """Medians of the repeats turned into the reported figures."""
    median = {kind: statistics.median(values) for kind, values in bench.samples.items()}
    train_tokens = plan.steps * plan.batch_size * plan.block_size
    peak = matmul_peak(plan.matmul_size, median["matmul"], bench.sweep_seconds)
    train_rate = train_tokens / median["train"]
    forward_rate = train_tokens / median["forward"]
    config = plan.model_config
    train_flops = train_rate * model_flops_per_token(config, training=True)
    forward_flops = forward_rate * model_flops_per_token(config, training=False)
    return {
        "train_tokens_per_s": train_rate,
        "forward_tokens_per_s": forward_rate,
        "generate_kv_tokens_per_s": plan.gen_tokens / median["generate_kv"],
        "generate_no_kv_tokens_per_s": plan.gen_tokens / median["generate_no_kv"],
        "generate_batched_chars_per_s": BATCHED_SAMPLES
        * plan.gen_tokens
        / median["generate_batched"],
        "decode_step_ms": 1e3 * median["decode_step"],
        "model_step_ms": 1e3 * median["model_step"],
        "decode_overhead_fraction": 1.0 - median["model_step"] / median["decode_step"],
        "peak_memory_bytes": float(bench.peak_memory),
        "peak_rss_bytes": float(bench.peak_rss),
        "train_flops_per_s": train_flops,
        "forward_flops_per_s": forward_flops,
        "matmul_peak_flops_per_s": peak,
        "train_mfu": train_flops / peak,
        "forward_mfu": forward_flops / peak,
    }


NO_RATIO = {"decode_overhead_fraction"}  # a ratio of two small, noisy fractions means nothing


def mlx_over_torch(backends: dict[str, Any]) -> dict[str, float | None]:
    """mlx / torch for each figure; None where the two are not the same kind of measurement."""
    if not {"mlx", "torch"} <= set(backends):
        return {}
    mlx, torch = backends["mlx"], backends["torch"]
    same_memory = mlx["memory_source"] == torch["memory_source"]
    ratios: dict[str, float | None] = {}
    for key, torch_value in torch["figures"].items():
        comparable = key not in NO_RATIO and (same_memory or key != "peak_memory_bytes")
        ratios[key] = mlx["figures"][key] / torch_value if comparable and torch_value else None
    return ratios


def build_report(
    plan: BenchPlan, benches: list[BackendBench], skipped: dict[str, str], load_at_start
) -> dict[str, Any]:
    backends = {
        bench.name: {
            **bench.description(),
            "figures": figures_of(bench, plan),
            "seconds": bench.samples,
        }
        for bench in benches
    }
    config, size = plan.model_config, plan.matmul_size
    return {
        "command": list(sys.argv),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            **machine_info(),
            "load_average_at_start": list(load_at_start),
            "load_average_at_end": list(load_average()),
        },
        "settings": plan.to_dict(),
        "flops": {
            "formula": FLOP_FORMULA,
            "N": flop_parameter_count(config),
            "training_per_token": model_flops_per_token(config, training=True),
            "forward_per_token": model_flops_per_token(config, training=False),
            "matmul_peak": f"best over a sweep ({size}^3, smaller squares, the model's GEMM "
            "shapes m x k x n) of the median 2*m*k*n / seconds, each backend's own matmul in its "
            "dtype",
        },
        "generation_paths": generation_paths(plan),
        "backends": backends,
        "ratios_mlx_over_torch": mlx_over_torch(backends),
        "skipped": skipped,
    }


# --- output ---


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _flops(value: float) -> str:
    return f"{value / 1e9:,.1f}"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _mebibytes(value: float) -> str:
    return f"{value / 2**20:,.0f}"


ROWS: list[tuple[str, str, Callable[[float], str]]] = [
    ("training tokens/s", "train_tokens_per_s", _rate),
    ("forward tokens/s", "forward_tokens_per_s", _rate),
    ("generate tokens/s, KV cache", "generate_kv_tokens_per_s", _rate),
    ("generate tokens/s, no cache", "generate_no_kv_tokens_per_s", _rate),
    (f"generate chars/s, {BATCHED_SAMPLES} samples", "generate_batched_chars_per_s", _rate),
    ("cached decode step, ms", "decode_step_ms", lambda v: f"{v:.2f}"),
    ("  of which model forward, ms", "model_step_ms", lambda v: f"{v:.2f}"),
    ("  decoder overhead", "decode_overhead_fraction", _percent),
    ("peak memory, MiB", "peak_memory_bytes", _mebibytes),
    ("process peak RSS, MiB", "peak_rss_bytes", _mebibytes),
    ("training GFLOP/s", "train_flops_per_s", _flops),
    ("forward GFLOP/s", "forward_flops_per_s", _flops),
    ("matmul peak GFLOP/s", "matmul_peak_flops_per_s", _flops),
    ("training MFU", "train_mfu", _percent),
    ("forward MFU", "forward_mfu", _percent),
]


def render_table(report: dict[str, Any]):
    """The figures as a rich Table: one column per backend, then mlx/torch when both ran."""
    from rich.table import Table

    table = Table(title=f"myllm bench --config {report['settings']['config']}")
    table.add_column("figure")
    names = list(report["backends"])
    for name in names:
        table.add_column(name, justify="right")
    ratios = report["ratios_mlx_over_torch"]
    if ratios:
        table.add_column("mlx/torch", justify="right")
    for label, key, formatted in ROWS:
        cells = [formatted(report["backends"][name]["figures"][key]) for name in names]
        if ratios:
            cells.append("" if ratios[key] is None else f"{ratios[key]:.2f}x")
        table.add_row(label, *cells)
    return table


def report_notes(report: dict[str, Any]) -> list[str]:
    """The lines printed under the table: devices, paths, memory sources, FLOP formula."""
    settings = report["settings"]
    model = settings["model_config"]
    notes = [
        f"model: d_model {model['d_model']}, {model['n_layers']} layers, {model['n_heads']} heads, "
        f"block {settings['block_size']}, batch {settings['batch_size']}, dtype "
        f"{settings['dtype']}, compile {settings['compile']}, "
        f"dropout {model['dropout']}; training steps per repeat: {settings['steps']}; medians of "
        f"{settings['repeats']} interleaved repeats after warm-up ({settings['warmup']} steps)"
    ]
    machine = report["machine"]
    start, end = machine["load_average_at_start"][0], machine["load_average_at_end"][0]
    # Our own run adds about one per busy thread by the end: only the start is a clean signal,
    # but an end far above what this process can account for means others joined.
    if start >= 0.5 * (machine["cpu_count"] or 1) or end > (machine["cpu_count"] or 1) + 0.5:
        notes.append(
            f"warning: the machine was busy (1-minute load {start:.1f} at the start, {end:.1f} "
            f"at the end, on {machine['cpu_count']} CPUs): other work makes these figures noisy"
        )
    if any(info["figures"]["train_mfu"] > 1 for info in report["backends"].values()):
        notes.append(
            "warning: an MFU above 100% means the matmul peak was measured low (other work "
            "during its samples) or the model's matmuls run faster than the square one"
        )
    for name, info in report["backends"].items():
        gpu = f", GPU {info['gpu']}" if info["gpu"] else ""
        notes.append(
            f"{name}: {info['device']}{gpu}; BLAS {info['blas']}; {info['precision']}; "
            f"peak memory = {info['memory_source']}"
        )
    for kind, path in report["generation_paths"].items():
        notes.append(f"{kind}: {path}")
    notes.append(f"FLOPs: {report['flops']['formula']}")
    notes.append(f"matmul peak: {report['flops']['matmul_peak']}")
    for name, reason in report["skipped"].items():
        notes.append(f"skipped {name}: {reason}")
    return notes


def write_report(path: Path, report: dict[str, Any]) -> None:
    import json

    from myllm.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(report, indent=2) + "\n")


def markdown_table(report: dict[str, Any]) -> str:
    """The table as Markdown, for benchmarks/README.md."""
    names = list(report["backends"])
    ratios = report["ratios_mlx_over_torch"]
    header = ["figure", *names] + (["mlx/torch"] if ratios else [])
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for label, key, formatted in ROWS:
        cells = [formatted(report["backends"][name]["figures"][key]) for name in names]
        if ratios:
            cells.append("" if ratios[key] is None else f"{ratios[key]:.2f}x")
        lines.append("| " + " | ".join([label.strip(), *cells]) + " |")
    return "\n".join(lines)
