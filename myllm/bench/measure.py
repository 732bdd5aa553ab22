"""One backend's measurements for `myllm bench`, run inside that backend's worker process.

The backend builds its real Trainer and Decoder on the plan's ModelConfig and is fed the same
numpy batches as every other backend (seeded). MFU is taken against a matmul peak measured in the
same run with the backend's own matmul, so it says how much of what *this* framework can do on
*this* device the model gets. The framework-specific timing (waiting for queued work, memory
counters, the matmul) is the backend's `BenchOps` (myllm/backend/contract.py).
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from myllm.backend.contract import Backend
from myllm.bench.machine import process_peak_rss_bytes, rss_source
from myllm.bench.plan import (
    BATCHED_SAMPLES,
    PROMPT_IDS,
    BenchPlan,
    sweep_shapes,
)
from myllm.bench.report import BackendResult
from myllm.config.settings import TrainConfig
from myllm.generate.loop import generate_tokens
from myllm.generate.sampling import SamplingSettings

MATMUL_SECONDS = 0.1  # each timed matmul sample runs about this long


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
        self.trainer = backend.Trainer(plan.model_config, train_config)
        self.dtype = self.trainer.precision.dtype
        self.decoder = self.trainer.decoder()
        self.ops = backend.BenchOps(self.trainer)
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
            "dtype_reason": self.trainer.precision.reason,
            "decode_dtype": self.decoder.dtype,  # generation's dtype (auto: float32 on a CPU)
            "matmul_precision": self.trainer.matmul_precision,
            "compiled": self.trainer.compiled,
            "precision": self.trainer.precision.describe(),  # what runs compiled, in which dtype
            "matmul_sweep_seconds": self.sweep_seconds,  # m x k x n -> seconds per matmul
            "memory_source": self.ops.memory_source(),
            "rss_source": rss_source(self.ops.rss_resettable),
            "matmuls_per_repeat": self.matmul_count,
            "process_id": os.getpid(),  # the worker's: no other backend shares it
        }

    def result(self) -> BackendResult:
        """Everything the parent's report needs from this backend, JSON-ready."""
        return BackendResult(
            name=self.name,
            description=self.description(),
            samples=self.samples,
            sweep_seconds=self.sweep_seconds,
            peak_memory=self.peak_memory,
            peak_rss=self.peak_rss,
        )


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
