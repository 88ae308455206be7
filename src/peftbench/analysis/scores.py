"""Six dimension scores in [0, 1] per method, each from named measured metrics with a direction.

Scores are relative: min-max across the methods in the store, so they rank methods, they do not grade
them. A dimension nobody measured stays missing (NaN) and is never filled in; weighted scores then
renormalise over what was measured and say how much of the weight that covered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .curves import DATA_EFFICIENCY_STUDY, data_efficiency_summary, study_records


@dataclass(frozen=True)
class Metric:
    column: str
    direction: str  # "max": higher is better, "min": lower is better
    log: bool = False  # normalise log10(value): counts that span orders of magnitude


DIMENSIONS: dict[str, tuple[Metric, ...]] = {
    "parameter_efficiency": (Metric("trainable_params", "min", log=True),),
    "computational_efficiency": (Metric("train_seconds", "min"), Metric("train_memory_mb", "min"),
                                 Metric("flops_per_step", "min")),
    "performance": (Metric("accuracy", "max"), Metric("f1", "max")),
    "generalization": (Metric("ood_accuracy", "max"), Metric("robustness", "max")),
    "data_efficiency": (Metric("accuracy_at_smallest_size", "max"), Metric("normalized_auc", "max")),
    "inference_efficiency": (Metric("deployed_latency_ms", "min"), Metric("deployed_throughput_per_s", "max"),
                             Metric("adapter_bytes", "min", log=True)),
}
DIMENSION_NAMES: tuple[str, ...] = tuple(DIMENSIONS)

# Columns that identify a trial rather than measure it: never averaged.
IDENTITY_COLUMNS = {"trial_id", "study", "method", "family", "seed", "status", "error", "attempts", "model",
                    "device", "provenance", "record_version", "train_size", "eval_size"}


def scoring_notes() -> dict[str, str]:
    """Dimension -> one line on how its score is normalised (shown by `peftbench dimensions`)."""
    common = ("min-max across the methods in the store (best 1, worst 0; a lone method or a tie gets 1), "
              "mean of the metric scores a method has")
    return {
        "parameter_efficiency": f"trainable_params, lower better, on log10 scale; {common}",
        "computational_efficiency": "train_seconds, training memory (peak_cuda_allocated_mb for GPU trials, "
                                    f"else peak_rss_mb), flops_per_step; lower better; {common}",
        "performance": f"accuracy and macro F1 on the test split, higher better; {common}",
        "generalization": f"ood_accuracy and robustness, higher better; {common}",
        "data_efficiency": "from the data-efficiency study only: accuracy at the smallest size and "
                           f"normalised AUC of accuracy vs log(size), higher better; {common}; "
                           "missing if not run",
        "inference_efficiency": "p50 latency (merged latency when the method can merge: its deployed form), "
                                "throughput (merged likewise), adapter_bytes on log10 scale; "
                                f"{common}",
    }


def memory_metric(records: pd.DataFrame) -> str:
    """The training-memory column that means something here: CUDA peak when every trial ran on a GPU."""
    if "device" in records and "peak_cuda_allocated_mb" in records and len(records):
        on_gpu = records["device"].astype(str).str.startswith("cuda").all()
        if on_gpu and pd.to_numeric(records["peak_cuda_allocated_mb"], errors="coerce").notna().all():
            return "peak_cuda_allocated_mb"
    return "peak_rss_mb"


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def _deployed(records: pd.DataFrame, plain: str, merged: str) -> pd.Series:
    """The merged measurement where the method can merge and it was measured, else the plain one."""
    can_merge = records["can_merge"].fillna(False).astype(bool) if "can_merge" in records else False
    merged_values = _numeric(records, merged)
    return merged_values.where(can_merge & merged_values.notna(), _numeric(records, plain))


def method_means(records: pd.DataFrame) -> pd.DataFrame:
    """One row per method (first-seen order): the mean over its trials of every numeric measurement,
    plus train_memory_mb, deployed_latency_ms and deployed_throughput_per_s."""
    frame = records.copy()
    frame["train_memory_mb"] = _numeric(frame, memory_metric(frame))
    frame["deployed_latency_ms"] = _deployed(frame, "latency_p50_ms", "merged_latency_p50_ms")
    frame["deployed_throughput_per_s"] = _deployed(frame, "throughput_per_s", "merged_throughput_per_s")
    columns = {}
    for col in frame.columns:
        if col in IDENTITY_COLUMNS:
            continue
        try:
            values = pd.to_numeric(frame[col], errors="coerce")
        except (TypeError, ValueError):  # lists or dicts
            continue
        if values.notna().any():
            columns[col] = values.astype(float)
    numeric = pd.DataFrame(columns, index=frame.index)
    numeric["method"] = frame["method"]
    return numeric.groupby("method", sort=False).mean()


def normalize(values: pd.Series, direction: str, log: bool = False) -> pd.Series:
    """Min-max to [0, 1] with 1 = best; NaN stays NaN; all-equal (or a single value) -> 1.0.

    log: log10(max(value, 1)) first, so 1e5 vs 1e7 parameters is a step, not the whole scale."""
    v = values.astype(float)
    if log:
        v = np.log10(v.clip(lower=1.0))
    lo, hi = v.min(), v.max()
    if pd.isna(lo) or hi == lo:
        return v.where(v.isna(), 1.0)
    scaled = (v - lo) / (hi - lo)
    return scaled if direction == "max" else 1.0 - scaled


@dataclass(frozen=True)
class DimensionScores:
    """scores: methods x six dimensions (NaN = not measured); metrics_used: which columns fed each."""

    scores: pd.DataFrame
    metrics_used: dict[str, list[str]]
    means: pd.DataFrame

    def missing(self) -> dict[str, list[str]]:
        """Dimension -> methods without a score for it (only dimensions with any missing)."""
        return {d: list(self.scores.index[self.scores[d].isna()]) for d in DIMENSION_NAMES
                if self.scores[d].isna().any()}


def dimension_scores(records: pd.DataFrame, all_records: pd.DataFrame | None = None) -> DimensionScores:
    """Scores for the methods in `records`; data efficiency comes from the data-efficiency study in
    `all_records` (default: `records`), matched by method name."""
    means = method_means(records)
    curves = data_efficiency_summary(study_records(records if all_records is None else all_records,
                                                   DATA_EFFICIENCY_STUDY))
    means = means.join(curves[["accuracy_at_smallest_size", "normalized_auc"]], how="left")
    scores = pd.DataFrame(index=means.index, columns=list(DIMENSION_NAMES), dtype=float)
    used: dict[str, list[str]] = {}
    for dim, metrics in DIMENSIONS.items():
        parts = {}
        for m in metrics:
            if m.column in means and means[m.column].notna().any():
                parts[m.column] = normalize(means[m.column], m.direction, m.log)
        used[dim] = list(parts)
        if parts:
            scores[dim] = pd.DataFrame(parts).mean(axis=1, skipna=True)
    return DimensionScores(scores, used, means)


def weighted_scores(scores: pd.DataFrame, weights: Mapping[str, float]) -> pd.DataFrame:
    """score = sum(w * s) / sum(w) over the dimensions a method has; coverage = that sum(w) / sum of all
    weights (1.0 when every weighted dimension was measured)."""
    w = pd.Series({d: float(weights.get(d, 0.0)) for d in scores.columns})
    measured = scores.notna()
    covered = measured.mul(w, axis=1).sum(axis=1)
    total = scores.fillna(0.0).mul(w, axis=1).sum(axis=1)
    score = (total / covered).where(covered > 0)
    return pd.DataFrame({"score": score, "coverage": covered / w.sum()})
