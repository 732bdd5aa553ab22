"""torch's side of `myllm bench`: waiting for queued work, memory counters, the matmul peak."""

from __future__ import annotations

import re

import torch

from myllm.bench.machine import cpu_name, process_peak_rss_bytes, reset_process_peak_rss, rss_source
from myllm_torch.device import synchronize
from myllm_torch.generate import cast_linear_parameters, forward_with
from myllm_torch.precision import DTYPES, autocast
from myllm_torch.trainer import Trainer


class BenchOps:
    """The timing operations of the torch backend around one Trainer (myllm/backend/contract.py)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.device = trainer.device
        self.rss_resettable = False
        self.mps_counter = "peak"  # MPS: which counter peak_memory_bytes read (memory_source)
        self.low_parameters = None  # at a low dtype, the Linear weights cast once, as the Decoder
        if trainer.precision.low:
            self.low_parameters = cast_linear_parameters(
                trainer.model, DTYPES[trainer.precision.dtype]
            )

    def forward(self, ids: torch.Tensor, cache=None) -> torch.Tensor:
        """Logits of the model for device token ids, no autograd (model already in eval)."""
        with torch.inference_mode(), autocast(self.device, self.trainer.precision.dtype):
            return forward_with(self.trainer.model, self.low_parameters, ids, cache)

    def force(self, values: list) -> None:
        """Wait until `values` are computed: torch CPU is eager, CUDA and MPS need a sync."""
        del values
        synchronize(self.device)

    def force_training(self) -> None:
        self.force([])

    def matmul_operands(
        self, shape: tuple[int, int, int], dtype: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[m, k] and [k, n] operands in `dtype` (what autocast feeds the matmuls)."""
        m, k, n = shape
        generator = torch.Generator().manual_seed(0)
        a, b = (torch.randn(*size, generator=generator) for size in ((m, k), (k, n)))
        return a.to(self.device, DTYPES[dtype]), b.to(self.device, DTYPES[dtype])

    def matmul(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)

    def reset_peak_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        if self.device.type == "mps":
            torch.accelerator.reset_peak_memory_stats()
        self.rss_resettable = reset_process_peak_rss()

    def peak_memory_bytes(self) -> int:
        """torch's own allocator only: MLX's arrays in the same process are not in the figure.

        MPS: the peak of torch.accelerator's counters where this torch's MPS allocator keeps
        them (they read 0 where it does not); else torch's MPS tensors after the repeat. Never
        driver_allocated_memory: that is the whole process's Metal memory, MLX's included."""
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.device.type == "mps":
            peak = int(torch.accelerator.max_memory_allocated())
            self.mps_counter = "peak" if peak > 0 else "current"
            return peak if peak > 0 else int(torch.mps.current_allocated_memory())
        return process_peak_rss_bytes()

    def memory_source(self) -> str:
        if self.device.type == "cuda":
            return "torch.cuda.max_memory_allocated (peak of torch's CUDA allocator)"
        if self.device.type == "mps" and self.mps_counter == "peak":
            return "torch.accelerator.max_memory_allocated (peak of torch's MPS allocator)"
        if self.device.type == "mps":
            return (
                "torch.mps.current_allocated_memory (torch's MPS tensors after the repeat: "
                "this torch keeps no MPS peak)"
            )
        return rss_source(self.rss_resettable)

    def gpu_name(self) -> str | None:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        if self.device.type == "mps":
            return f"Apple GPU via MPS ({cpu_name()})"
        return None

    def blas(self) -> str:
        match = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        name = match.group(1) if match else "unknown"
        return f"{name} (torch build); {torch.get_num_threads()} threads"
