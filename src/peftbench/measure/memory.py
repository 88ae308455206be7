"""Process memory from the kernel (RSS high-water mark) and CUDA allocator peaks.

tracemalloc cannot see tensors; ru_maxrss / VmHWM can. On Linux the high-water mark can be reset
(`/proc/self/clear_refs` = 5), which lets one process measure training and inference peaks separately.
"""

from __future__ import annotations

import ctypes
import gc
import resource
from pathlib import Path

import torch


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """The kernel's high-water mark of this process (since start or the last reset)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_and_reset_peak() -> bool:
    """Give freed memory back to the OS, then restart the high-water mark at current RSS."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cuda_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def cuda_peaks_mb(device: torch.device) -> tuple[float | None, float | None]:
    if device.type != "cuda":
        return None, None
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) / 2**20, torch.cuda.max_memory_reserved(device) / 2**20)
