"""Predicted training time: each step's FLOPs (traced) over this machine's measured rate for the model's own
shape and method, found by a short calibration on a real copy of the model cut to one and two layers (the
step time of the full depth is the one-layer time plus the per-layer difference), cached per machine, model
shape, method and batch shape under the peftbench cache dir, and measured again when a quick matrix-multiply
probe says the machine's speed has drifted. Where no calibration can run (another device, or a copy too big
for this machine), the time is a roofline estimate from peak figures.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

DRIFT = 0.25  # recalibrate when the probe's rate moved by more than this share
CALIBRATION_STEPS = 3  # timed steps per depth (their median), after one warm-up step
CALIBRATION_SECONDS = 3.0  # fewer timed steps once these are spent
MAX_CALIBRATION_PARAMS = 150_000_000  # a 2-layer copy above this is not trained here: roofline instead
CACHE_VERSION = 1


@dataclass
class StepTime:
    seconds: float | None  # at the calibration batch shape
    how: str  # "calibrated" | "roofline" | "pending" (budget spent) | "rate" (a calibrated method's) | "none"
    note: str = ""


def cache_dir() -> Path:
    env = os.environ.get("PEFTBENCH_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "peftbench"
    return root / "plan-calibration"


def machine_key() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def probe_gflops(n: int = 512, repeats: int = 5) -> float:
    """This machine's fp32 matrix-multiply rate now (best of a few), in GFLOP/s: the drift probe."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _entry_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return cache_dir() / f"{digest}.json"


def cached_or_measured(key: dict, measure, probe: float) -> tuple[float | None, bool]:
    """(seconds per step, from cache?) for `key`: a cached figure whose probe is within DRIFT of today's,
    else `measure()` now, stored with today's probe (None, False when there is no `measure`)."""
    path = _entry_path({**key, "machine": machine_key(), "version": CACHE_VERSION})
    if path.is_file():
        try:
            entry = json.loads(path.read_text())
            if abs(entry["probe_gflops"] - probe) <= DRIFT * entry["probe_gflops"]:
                return float(entry["seconds"]), True
        except (ValueError, KeyError):
            pass
    if measure is None:
        return None, False
    seconds = measure()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "machine": machine_key(), "probe_gflops": probe,
                                "seconds": seconds, "measured_at": time.time()}, default=str))
    return seconds, False


def time_real_steps(model: torch.nn.Module, batch: dict, steps: int = CALIBRATION_STEPS) -> float:
    """Median seconds of a training step as trial/train.py takes it, after one warm-up step; a slow step
    (a big model) is timed fewer times, once CALIBRATION_SECONDS are spent (at least once)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, fused=True) if trainable else None
    model.train()
    cuda = next(model.parameters()).is_cuda
    times = []
    for i in range(steps + 1):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        if opt is not None:
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
            if sum(times) > CALIBRATION_SECONDS:
                break
    times.sort()
    return times[len(times) // 2]


def depth_extrapolated(time_at_depth, layers: int) -> float:
    """Step time at full depth from real steps at depth 1 and 2: t(L) = t(1) + (L - 1)(t(2) - t(1))."""
    t1 = time_at_depth(1)
    if layers <= 1:
        return t1
    t2 = time_at_depth(2)
    return t1 + (layers - 1) * max(t2 - t1, 0.0)


def roofline_seconds(flops: float, bytes_moved: float, tflops: float | None, bandwidth_gbs: float | None
                     ) -> float | None:
    """max(compute time, memory time) from the device's peak figures; None without a compute peak."""
    if not tflops:
        return None
    compute = flops / (tflops * 1e12)
    memory = bytes_moved / (bandwidth_gbs * 1e9) if bandwidth_gbs else 0.0
    return max(compute, memory)


class Spent:
    """Wall seconds of calibration spent by one plan, against its budget (None: no limit)."""

    def __init__(self, budget_s: float | None):
        self.budget_s, self.seconds = budget_s, 0.0

    def left(self) -> bool:
        return self.budget_s is None or self.seconds < self.budget_s

    @contextlib.contextmanager
    def timed(self):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - t0


def fill_from_calibrated(rows: list[dict]) -> None:
    """Methods left "pending" when a plan's calibration budget ran out take the seconds per FLOP of a
    calibrated method (the first of their own family, else the median of all), scaled by their own FLOPs."""
    rate = {}
    for r in rows:
        t = r["time"]
        if t["how"] == "calibrated" and t["trial_s"] and r["flops"]["train"]:
            rate.setdefault(r["family"], (r["method"], t["trial_s"] / r["flops"]["train"]))
    rates = sorted(v for _, v in rate.values())
    for r in rows:
        t = r["time"]
        if t["how"] != "pending":
            continue
        if not rates:
            t.update(how="none", note="no time: the calibration budget was spent before any method was timed")
            continue
        source, per_flop = rate.get(r["family"], ("the calibrated methods' median", rates[len(rates) // 2]))
        t["trial_s"] = per_flop * r["flops"]["train"]
        t["step_s"] = t["trial_s"] / max(t["steps"], 1)
        t.update(how="rate", note=f"calibration budget spent: seconds per FLOP of {source}; the next plan "
                 f"calibrates it")
