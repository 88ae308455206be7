"""CPU time the rest of the machine used while a trial trained: the contention a load average can miss.

Two torch processes sharing 2 cores slow each other several times over while each still shows high CPU
utilisation (OpenMP threads spin while they wait), and a 1-thread neighbour keeps the load average under any
sensible threshold. The machine's own busy time, less this process's, says directly how many cores other
work took. Read from /proc/stat (Linux); None where it is missing or counts other CPUs than this process may
use (a container that sees the host's CPUs), so the check is skipped rather than guessed."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


def available_cores() -> int:
    """CPU cores this process may run on (its affinity), else every core."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_busy_seconds() -> float | None:
    """Seconds of non-idle CPU time all CPUs have spent since boot, or None (see the module doc)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    if sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit()) != available_cores():
        return None
    fields = [int(x) for x in lines[0].split()[1:]]  # user nice system idle iowait irq softirq steal ...
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    busy = sum(fields[:8]) - idle  # guest time is already inside user/nice
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass
class LoadProbe:
    """Started before a span of work; `other_cores()` after it: the mean number of cores other processes kept
    busy over the span (None when the machine's CPU time cannot be read)."""

    wall: float
    own: float
    busy: float | None

    @classmethod
    def start(cls) -> "LoadProbe":
        return cls(time.perf_counter(), time.process_time(), machine_busy_seconds())

    def other_cores(self) -> float | None:
        busy, wall = machine_busy_seconds(), time.perf_counter() - self.wall
        if busy is None or self.busy is None or wall <= 0:
            return None
        others = (busy - self.busy) - (time.process_time() - self.own)
        return max(others, 0.0) / wall


# Thresholds for flagging a CPU timing as contended (trial/measure_training.py, measure/inference.py).
CONTENDED_UTILISATION = 0.6
CONTENDED_EXTRA_LOAD = 1.0
CONTENDED_OTHER_CORES = 0.25  # a quiet machine's background (this session's shell, logging) stays near 0.05


def load_reasons(load_before: float, load_after: float, other_cores: float | None, cores: int) -> list[str]:
    """Why a span of work on `cores` CPU cores was contended: a load average above the cores (this process
    accounts for up to all of them) plus CONTENDED_EXTRA_LOAD, or other processes keeping more than
    CONTENDED_OTHER_CORES busy (LoadProbe). Empty when it was not."""
    reasons = []
    if max(load_before, load_after) > cores + CONTENDED_EXTRA_LOAD:
        reasons.append(f"load average {max(load_before, load_after):.1f} on {cores} cores")
    if other_cores is not None and other_cores > CONTENDED_OTHER_CORES:
        reasons.append(f"other processes kept {other_cores:.1f} of {cores} cores busy")
    return reasons


def contention_note(reasons: list[str]) -> str | None:
    return "other work shared the machine: " + "; ".join(reasons) if reasons else None
