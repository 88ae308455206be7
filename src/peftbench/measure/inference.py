"""Inference speed: batch-1 latency percentiles and batch-32 throughput, after warm-up, and whether other
work shared the machine while they were timed (`timed_cleanly`)."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import numpy as np
import torch

from peftbench.data.prepared import TokenizedSet
from peftbench.measure.machine_load import LoadProbe, available_cores, contention_note, load_reasons


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items() if k != "labels"}


@torch.inference_mode()
def latency_ms(model, data: TokenizedSet, runs: int, device: torch.device, pad_id: int,
               warmup: int = 5) -> dict[str, float]:
    """Single-example latency over `runs` real test examples (their own lengths), after `warmup` calls."""
    model.eval()
    n = len(data)
    inputs = [_to(data.batch([i % n], pad_id), device) for i in range(runs + warmup)]
    times = []
    for i, batch in enumerate(inputs):
        _sync(device)
        t0 = time.perf_counter()
        model(**batch)
        _sync(device)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    arr = np.asarray(times)
    p25, p50, p75, p95 = np.percentile(arr, [25, 50, 75, 95])
    # p25/p75: the spread over repeats, so a latency difference inside it is read as a tie
    return {"latency_p50_ms": float(p50), "latency_p95_ms": float(p95), "latency_mean_ms": float(arr.mean()),
            "latency_p25_ms": float(p25), "latency_p75_ms": float(p75)}


@torch.inference_mode()
def throughput_per_s(model, data: TokenizedSet, batches: int, device: torch.device, pad_id: int,
                     batch_size: int = 32) -> float:
    """Examples per second at batch 32 on consecutive test rows (natural length mix), one warm-up batch."""
    model.eval()
    n = len(data)
    rows = [[(b * batch_size + j) % n for j in range(batch_size)] for b in range(batches + 1)]
    inputs = [_to(data.batch(r, pad_id), device) for r in rows]
    model(**inputs[0])
    _sync(device)
    t0 = time.perf_counter()
    for batch in inputs[1:]:
        model(**batch)
    _sync(device)
    return batches * batch_size / (time.perf_counter() - t0)


def timed_cleanly(measure: Callable[[], dict[str, Any]], device: torch.device, prefix: str) -> dict[str, Any]:
    """Run `measure` (the timings) and add `<prefix>_timing_contended`, `<prefix>_timing_note` and
    `<prefix>_other_cores_busy`: the load average and the cores other processes kept busy meanwhile
    (measure/machine_load.py). On CPU only, as for training time; the CPU-share test training uses is left
    out, since batch-1 inference need not keep every thread busy."""
    load_before, probe = os.getloadavg()[0], LoadProbe.start()
    figures = dict(measure())
    others = probe.other_cores()
    reasons = load_reasons(load_before, os.getloadavg()[0], others, available_cores()) if device.type == "cpu" else []
    figures.update({f"{prefix}_timing_contended": bool(reasons), f"{prefix}_timing_note": contention_note(reasons),
                    f"{prefix}_other_cores_busy": others})
    return figures
