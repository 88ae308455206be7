"""Pareto fronts over any measured metrics: which methods no other method beats on every objective.

A dominates B when A is at least as good on every objective and strictly better on one. Exact
duplicates therefore never dominate each other: both stay on the front unless a third point strictly
dominates them, in which case both leave it. Ties on some objectives are decided by the others.

A front is a choice, so it never reads the test split: an objective named after a test-split figure
(`accuracy`, `f1`, ...) is read on validation (`val_accuracy`, `val_f1`, ...), and figures only the test
rows have (the robustness drop, perturbed accuracies) are refused. The test figures are shown beside.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from peftbench.errors import PeftbenchError

DIRECTIONS = ("max", "min")
COMMON_METRICS = ("val_accuracy", "val_f1", "ood_balanced_accuracy", "trainable_params", "trainable_pct",
                  "train_seconds", "peak_rss_net_mb", "flops_per_step", "latency_p50_ms", "throughput_per_s",
                  "adapter_bytes")
# A test-split quality figure -> the same figure on validation, which an objective reads instead.
ON_VALIDATION = {"accuracy": "val_accuracy", "f1": "val_f1", "precision": "val_precision",
                 "recall": "val_recall", "balanced_accuracy": "val_balanced_accuracy",
                 "exact_match": "val_exact_match", "gain_over_zero_shot": "val_gain_over_zero_shot",
                 "other_rate": "val_other_rate", "eval_loss": "val_loss",
                 "mean_generated_tokens": "val_mean_generated_tokens"}
# Quality figures only the test rows have (no validation counterpart): never an objective.
TEST_ONLY_PREFIXES = ("robustness_drop", "perturbed_", "clean_subset_", "response_nll")


@dataclass(frozen=True)
class Objective:
    metric: str  # the column the front reads
    direction: str  # "max" | "min"
    asked: str | None = None  # the test-split name the user gave, when `metric` is its validation figure

    def __str__(self) -> str:
        return f"{self.metric}:{self.direction}"


def on_validation(metric: str, known: set[str]) -> str:
    """The column an objective named `metric` reads: its validation figure for a test-split quality figure;
    one line (PeftbenchError) for a figure only the test rows have, or one with no validation figure here."""
    if metric.startswith(TEST_ONLY_PREFIXES):
        raise PeftbenchError(f"{metric} is measured on test rows, which only report: a Pareto front is a "
                             "choice, made on validation-side figures (e.g. val_accuracy, ood_balanced_accuracy)")
    if metric in ON_VALIDATION:
        val = ON_VALIDATION[metric]
        if val not in known:
            raise PeftbenchError(f"{metric}: a Pareto front reads it on validation ({val}), which these trials "
                                 "did not store; the test split only reports")
        return val
    return metric


def parse_objectives(text: str, available: Iterable[str]) -> list[Objective]:
    """`accuracy:max,peak_rss_mb:min` -> objectives; every metric must be a measured column (a test-split
    figure is read on validation: see `on_validation`)."""
    known = set(available)
    out: list[Objective] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        metric, sep, direction = (part.strip() for part in item.partition(":"))
        if not sep or direction not in DIRECTIONS:
            name = metric or item
            raise PeftbenchError(f"objective {item!r} needs a direction: {name}:max or {name}:min")
        if metric not in known and metric not in ON_VALIDATION:
            examples = ", ".join(m for m in COMMON_METRICS if m in known)
            raise PeftbenchError(f"unknown metric {metric!r} in --objectives: not measured in this store"
                                 + (f" (measured: {examples}, ...)" if examples else ""))
        column = on_validation(metric, known)
        if any(o.metric == column for o in out):
            raise PeftbenchError(f"metric {column!r} is named twice in --objectives")
        out.append(Objective(column, direction, metric if column != metric else None))
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
