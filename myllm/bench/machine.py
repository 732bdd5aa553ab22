"""The machine and this process: CPU name, load, peak resident memory (no framework)."""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np


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


def rss_source(resettable: bool) -> str:
    if resettable:
        return (
            "process peak RSS (VmHWM, reset before each training repeat; the backend's own "
            "worker process: Python, its framework and its model)"
        )
    return "process peak RSS since start (getrusage ru_maxrss: not resettable, the worker)"
