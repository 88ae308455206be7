"""The held-out report of a choice: each chosen method's test accuracy and macro F1, with 95% intervals.

Every choice (scores, limits, P(best), the tied set, Pareto fronts, sweep advice) reads validation-side
figures. The test split is read once per trial and only reported: here, beside the choice, where it is an
unbiased estimate of the chosen method because nothing chose on it. Nothing in this module feeds a score,
a limit or a ranking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from peftbench.stats.intervals import metric_interval

REPORTED_METRICS = ("accuracy", "f1")  # test accuracy (exact match for --task generate) and macro F1
COLUMNS = ("test_accuracy", "test_accuracy_low", "test_accuracy_high", "test_f1", "test_f1_low", "test_f1_high",
           "seeds", "test_rows")


@dataclass(frozen=True)
class HeldOut:
    """One method's test figures; low/high NaN where no per-row predictions were stored (older trials)."""

    method: str
    test_accuracy: float
    test_accuracy_low: float
    test_accuracy_high: float
    test_f1: float
    test_f1_low: float
    test_f1_high: float
    seeds: int
    test_rows: float  # NaN when unknown
    accuracy_name: str = "accuracy"  # "exact match" for --task generate

    def text(self) -> str:
        """`test accuracy 0.871 [0.845, 0.895], test macro F1 0.870 [0.842, 0.894] (1 seed, 800 rows)`."""
        accuracy = _figure(self.test_accuracy, self.test_accuracy_low, self.test_accuracy_high)
        parts = [f"test {self.accuracy_name} {accuracy}"]
        if not math.isnan(self.test_f1):
            parts.append(f"test macro F1 {_figure(self.test_f1, self.test_f1_low, self.test_f1_high)}")
        size = f"{self.seeds} seed{'s' * (self.seeds != 1)}"
        if not math.isnan(self.test_rows):
            size += f", {self.test_rows:,.0f} rows"
        return ", ".join(parts) + f" ({size})"


def _figure(mean: float, low: float, high: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.3f}" + ("" if math.isnan(low) else f" [{low:.3f}, {high:.3f}]")


def _stored_mean(trials: list[dict], metric: str) -> float:
    values = pd.to_numeric(pd.Series([t.get(metric) for t in trials], dtype=object), errors="coerce")
    return float(values.mean()) if values.notna().any() else float("nan")


def held_out(records: pd.DataFrame, method: str) -> HeldOut:
    """The test figures of `method` over its trials (seeds) in `records`: the 95% interval from its stored
    rows (stats.intervals.metric_interval), else the stored mean alone."""
    trials = records[records["method"] == method].to_dict("records")
    figures: dict[str, float] = {}
    rows = float("nan")
    for metric in REPORTED_METRICS:
        mean = _stored_mean(trials, metric)
        low = high = float("nan")
        interval = metric_interval(trials, metric) if trials and not math.isnan(mean) else None
        if interval is not None:
            mean, low, high, rows = interval.mean, interval.ci_low, interval.ci_high, float(interval.n_rows)
        figures.update({f"test_{metric}": mean, f"test_{metric}_low": low, f"test_{metric}_high": high})
    if math.isnan(rows):
        rows = _stored_mean(trials, "test_size")
    generate = any(isinstance(t.get("exact_match"), (int, float)) and not math.isnan(t["exact_match"])
                   for t in trials)
    return HeldOut(method, seeds=len(trials), test_rows=rows,
                   accuracy_name="exact match" if generate else "accuracy", **figures)


def held_out_table(records: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """One row per method (index): COLUMNS, for tables that show the test figures beside a ranking."""
    rows = {m: held_out(records, m) for m in methods}
    return pd.DataFrame({m: {c: getattr(h, c) for c in COLUMNS} for m, h in rows.items()}).T.reindex(
        columns=list(COLUMNS)).astype(float)
