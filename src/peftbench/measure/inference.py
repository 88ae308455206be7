"""Inference speed: batch-1 latency percentiles and batch-32 throughput, after warm-up."""

from __future__ import annotations

import time

import numpy as np
import torch

from peftbench.data.prepared import TokenizedSet


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
