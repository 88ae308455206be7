"""Pareto fronts over any measured metrics: which methods no other method beats on every objective.

A dominates B when A is at least as good on every objective and strictly better on one. Exact
duplicates therefore never dominate each other: both stay on the front unless a third point strictly
dominates them, in which case both leave it. Ties on some objectives are decided by the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from peftbench.errors import PeftbenchError

DIRECTIONS = ("max", "min")
COMMON_METRICS = ("accuracy", "f1", "ood_balanced_accuracy", "robustness_drop", "trainable_params",
                  "trainable_pct", "train_seconds", "peak_rss_net_mb", "flops_per_step", "latency_p50_ms",
                  "throughput_per_s", "adapter_bytes")


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str  # "max" | "min"

    def __str__(self) -> str:
        return f"{self.metric}:{self.direction}"


def parse_objectives(text: str, available: Iterable[str]) -> list[Objective]:
    """`accuracy:max,peak_rss_mb:min` -> objectives; every metric must be a measured column."""
    known = set(available)
    out: list[Objective] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        metric, sep, direction = (part.strip() for part in item.partition(":"))
        if not sep or direction not in DIRECTIONS:
            name = metric or item
            raise PeftbenchError(f"objective {item!r} needs a direction: {name}:max or {name}:min")
        if metric not in known:
            examples = ", ".join(m for m in COMMON_METRICS if m in known)
            raise PeftbenchError(f"unknown metric {metric!r} in --objectives: not measured in this store"
                                 + (f" (measured: {examples}, ...)" if examples else ""))
        if any(o.metric == metric for o in out):
            raise PeftbenchError(f"metric {metric!r} is named twice in --objectives")
        out.append(Objective(metric, direction))
    if len(out) < 2:
        raise PeftbenchError("a Pareto front needs at least two objectives, "
                             "e.g. accuracy:max,trainable_params:min")
    return out


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """a, b in "higher is better" form."""
    return bool(np.all(a >= b) and np.any(a > b))


def pareto_table(points: pd.DataFrame, objectives: list[Objective]) -> pd.DataFrame:
    """The objective columns of `points` (one row per method, index = method), plus `on_front` and
    `dominated_by` (the first method found that dominates it). Rows missing an objective are dropped:
    an unmeasured point can neither dominate nor be dominated."""
    cols = [o.metric for o in objectives]
    table = points[cols].apply(pd.to_numeric, errors="coerce").dropna()
    signs = np.array([1.0 if o.direction == "max" else -1.0 for o in objectives])
    values = table.to_numpy(float) * signs
    dominated_by = [next((name for name, other in zip(table.index, values) if dominates(other, point)), None)
                    for point in values]
    table["on_front"] = [b is None for b in dominated_by]
    table["dominated_by"] = dominated_by
    return table
