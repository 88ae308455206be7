"""Inference figures that are compared, timed side by side: every model in one process, round robin.

Each trial times its own model at its own moment, so two trials' latencies differ by what the machine was
doing then as well as by their graphs (the same graph timed in two trials has differed by 30%). Here every
model is timed in each round, in an order rotated per round, on the same inputs: a slow moment slows every
model of that round, and the rounds are paired samples for the bootstrap (analysis/timing_noise.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from peftbench.data.prepared import TokenizedSet


@dataclass(frozen=True)
class Samples:
    latency_ms: list[list[float]]  # rounds x calls: batch-1 latencies, in ms
    batch_seconds: list[float]  # per round: one batch of `batch_rows` rows
    batch_rows: int


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(model: nn.Module, batch: dict, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    model(**batch)
    _sync(device)
    return time.perf_counter() - t0


@torch.inference_mode()
def interleaved(models: dict[str, nn.Module], data: TokenizedSet, device: torch.device, pad_id: int,
                rounds: int, calls: int, batch_rows: int = 32, warmup: int = 2) -> dict[str, Samples]:
    """Per model: `calls` batch-1 latencies and one `batch_rows` batch per round, over `rounds` rounds.

    Every model sees the same inputs (call c of round r reads test row r * calls + c; round r's batch reads
    consecutive rows from r * batch_rows), and round r visits the models starting at the r-th, so no model
    is always timed right after the same other one. `warmup` untimed batch-1 calls and one batch per model
    come first."""
    if not models or rounds < 1 or calls < 1:
        raise ValueError("interleaved timing needs models, rounds >= 1 and calls >= 1")
    n = len(data)
    rows = max(1, min(batch_rows, n))

    def one(i: int) -> dict:
        return {k: v.to(device) for k, v in data.batch([i % n], pad_id).items() if k != "labels"}

    def many(r: int) -> dict:
        idx = [(r * rows + j) % n for j in range(rows)]
        return {k: v.to(device) for k, v in data.batch(idx, pad_id).items() if k != "labels"}

    singles = [one(i) for i in range(rounds * calls)]
    batches = [many(r) for r in range(rounds)]
    names = list(models)
    for name in names:
        models[name].eval()
        for i in range(warmup):
            models[name](**singles[i % len(singles)])
        models[name](**batches[0])
    latency = {name: [] for name in names}
    seconds = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            model = models[name]
            latency[name].append([_timed(model, singles[r * calls + c], device) * 1000 for c in range(calls)])
            seconds[name].append(_timed(model, batches[r], device))
    return {name: Samples(latency[name], seconds[name], rows) for name in names}
