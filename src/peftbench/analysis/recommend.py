"""The recommender: hard limits first, then a weighted score over the six dimensions (optionally
TOPSIS beside it), then configuration advice read off the sweep studies.

Scores are normalised over every method of the study before limits are applied, so adding a limit
removes candidates without changing the others' scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import pandas as pd

from ..errors import PeftbenchError
from .curves import (
    DATA_EFFICIENCY_STUDY,
    RANK_SWEEP_STUDY,
    best_by_size,
    smallest_sufficient_rank,
    study_records,
)
from .scores import DIMENSION_NAMES, DIMENSIONS, dimension_scores, memory_metric, weighted_scores
from .topsis import topsis

DEFAULT_STUDY = "tradeoff"


@dataclass(frozen=True)
class Limits:
    """Hard limits; None = no limit. Memory is training memory (CUDA peak on GPU stores, else RSS)."""

    max_memory_mb: float | None = None
    max_trainable_params: float | None = None
    min_accuracy: float | None = None
    max_train_seconds: float | None = None
    max_latency_ms: float | None = None

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (not math.isfinite(value) or value < 0):
                option = "--" + f.name.replace("_", "-")
                raise PeftbenchError(f"{option} must be a non-negative number, got {value:g}")
        if self.min_accuracy is not None and self.min_accuracy > 1:
            raise PeftbenchError(f"--min-accuracy is a fraction in [0, 1], got {self.min_accuracy:g}")


# limit field -> (measured column in method_means, True if the limit is an upper bound)
LIMIT_COLUMNS = {
    "max_memory_mb": ("train_memory_mb", True),
    "max_trainable_params": ("trainable_params", True),
    "min_accuracy": ("accuracy", False),
    "max_train_seconds": ("train_seconds", True),
    "max_latency_ms": ("deployed_latency_ms", True),
}


@dataclass(frozen=True)
class Exclusion:
    method: str
    limit: str  # the option, e.g. "--max-memory-mb 1100"
    metric: str  # the measured column it was checked against
    value: float | None  # None: not measured, so it cannot be shown to meet the limit


@dataclass
class Recommendation:
    study_label: str
    weights: dict[str, float]
    ranking: pd.DataFrame  # index method: score, coverage, six dimensions[, topsis]
    excluded: list[Exclusion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    advice: dict[str, str] = field(default_factory=dict)  # topic (merging, rank, data) -> one sentence

    @property
    def top(self) -> str | None:
        return str(self.ranking.index[0]) if len(self.ranking) else None


def select_study(records: pd.DataFrame, study: str | None) -> tuple[pd.DataFrame, str]:
    """The records to rank: the named study, else "tradeoff" when present, else every study."""
    studies = list(dict.fromkeys(records["study"]))
    if study is not None:
        if study not in studies:
            raise PeftbenchError(f"no finished trials in study {study!r} "
                                 f"(studies here: {', '.join(studies)})")
        return records[records["study"] == study], f"study {study}"
    if DEFAULT_STUDY in studies:
        return records[records["study"] == DEFAULT_STUDY], f"study {DEFAULT_STUDY}"
    return records, "all studies (" + ", ".join(studies) + ")"


def metric_label(column: str, records: pd.DataFrame) -> str:
    if column == "train_memory_mb":
        return memory_metric(records)
    if column == "deployed_latency_ms":
        return "latency_p50_ms (merged when mergeable)"
    return column


def apply_limits(means: pd.DataFrame, limits: Limits,
                 records: pd.DataFrame) -> tuple[list[str], list[Exclusion]]:
    """Methods meeting every limit, and one Exclusion per (method, limit) broken."""
    excluded: list[Exclusion] = []
    for name, (column, upper) in LIMIT_COLUMNS.items():
        bound = getattr(limits, name)
        if bound is None:
            continue
        option = f"--{name.replace('_', '-')} {bound:g}"
        values = means[column] if column in means else pd.Series(float("nan"), index=means.index)
        for method, value in values.items():
            if pd.isna(value) or (value > bound if upper else value < bound):
                excluded.append(Exclusion(str(method), option, metric_label(column, records),
                                          None if pd.isna(value) else float(value)))
    out = {e.method for e in excluded}
    return [m for m in means.index if m not in out], excluded


def coverage_notes(scores: pd.DataFrame, metrics_used: Mapping[str, list[str]],
                   weights: Mapping[str, float]) -> list[str]:
    """Say plainly which weighted dimensions or metrics were not measured, and what that changes."""
    notes = []
    for dim in DIMENSION_NAMES:
        if weights.get(dim, 0) <= 0:
            continue
        missing = list(scores.index[scores[dim].isna()])
        if len(missing) == len(scores):
            why = " (no data-efficiency results for these methods)" if dim == "data_efficiency" else ""
            notes.append(f"{dim} was not measured{why}: weights renormalised over the measured dimensions")
        elif missing:
            notes.append(f"{dim} not measured for {', '.join(missing)}: scores there renormalise over the "
                         "measured dimensions (coverage < 100%)")
        unused = [m.column for m in DIMENSIONS[dim] if m.column not in metrics_used[dim]]
        if unused and len(missing) < len(scores):
            notes.append(f"{dim} uses {', '.join(metrics_used[dim])} only ({', '.join(unused)} not measured)")
    return notes


def topsis_column(means: pd.DataFrame, weights: Mapping[str, float]) -> tuple[pd.Series | None, str]:
    """TOPSIS over the raw metrics of the weighted dimensions; each dimension's weight is split equally
    over its metrics measured for every candidate. Returns (closeness, a note on the criteria)."""
    crit_weights: dict[str, float] = {}
    directions: dict[str, str] = {}
    for dim, metrics in DIMENSIONS.items():
        usable = [m for m in metrics if m.column in means and means[m.column].notna().all()]
        for m in usable:
            if weights.get(dim, 0) > 0:
                crit_weights[m.column] = weights[dim] / len(usable)
                directions[m.column] = m.direction
    if not crit_weights:
        return None, "TOPSIS: no weighted metric is measured for every candidate; not computed"
    closeness = topsis(means[list(crit_weights)], crit_weights, directions)
    return closeness, "TOPSIS criteria (raw values, vector-normalised): " + ", ".join(
        f"{c} {directions[c]} {w:.2f}" for c, w in crit_weights.items())


def recommend(records: pd.DataFrame, weights: Mapping[str, float], limits: Limits = Limits(),
              study: str | None = None, use_topsis: bool = False) -> Recommendation:
    """Rank the methods of a study for these (normalised) weights under these limits."""
    if records.empty:
        raise PeftbenchError("no finished trials to recommend from")
    limits.validate()
    selected, label = select_study(records, study)
    dims = dimension_scores(selected, records)
    kept, excluded = apply_limits(dims.means, limits, selected)
    ranking = weighted_scores(dims.scores, weights).join(dims.scores).loc[kept]
    notes = coverage_notes(dims.scores, dims.metrics_used, weights)
    if use_topsis and kept:
        closeness, note = topsis_column(dims.means.loc[kept], weights)
        notes.append(note)
        if closeness is not None:
            ranking["topsis"] = closeness
    ranking = ranking.sort_index().sort_values("score", ascending=False, kind="stable", na_position="last")
    rec = Recommendation(label, dict(weights), ranking, excluded, notes)
    if rec.top is not None:
        rec.advice = configuration_advice(records, dims.means, rec.top)
    return rec


def configuration_advice(records: pd.DataFrame, means: pd.DataFrame, top: str) -> dict[str, str]:
    """Advice the measurements support: what merging buys, smallest sufficient rank, small-data winner."""
    advice = {"merging": merge_advice(means, top), "rank": rank_advice(records), "data": data_advice(records)}
    return {topic: text for topic, text in advice.items() if text}


def merge_advice(means: pd.DataFrame, method: str, noise: float = 0.05) -> str | None:
    """Does merging remove the adapter's latency cost? Changes under `noise` (relative) count as none."""
    row = means.loc[method]
    plain, merged = row.get("latency_p50_ms"), row.get("merged_latency_p50_ms")
    if plain is None or pd.isna(plain):
        return None
    full = means.loc["Full"].get("latency_p50_ms") if "Full" in means.index and method != "Full" else None
    has_full = full is not None and not pd.isna(full)
    ref = f"; Full: {full:.2f} ms" if has_full else ""
    if merged is not None and not pd.isna(merged):
        change = (merged - plain) / plain
        if change < -noise:
            return (f"Merge {method} into the base weights for deployment: p50 latency {plain:.2f} -> "
                    f"{merged:.2f} ms ({change:+.0%}){ref}; the adapter's latency cost goes away")
        return (f"Merging {method} changes p50 latency only {plain:.2f} -> {merged:.2f} ms ({change:+.0%})"
                f"{ref}: its adapter costs no measurable latency here; keep it separate if you swap adapters")
    if not has_full:
        return None
    extra = (plain - full) / full
    if extra > noise:
        return (f"{method} cannot be merged: its extra parameters stay in the forward pass, "
                f"p50 {plain:.2f} ms vs Full {full:.2f} ms ({extra:+.0%})")
    return (f"{method} adds no measurable inference latency (p50 {plain:.2f} ms vs Full {full:.2f} ms); "
            "nothing to merge")


def rank_advice(records: pd.DataFrame) -> str | None:
    choice = smallest_sufficient_rank(study_records(records, RANK_SWEEP_STUDY))
    if choice is None:
        return None
    if choice.rank == choice.best_rank:
        return (f"Rank sweep: LoRA r={choice.rank} is the smallest rank with the best accuracy "
                f"({choice.accuracy:.3f}, {choice.trainable_params:,.0f} trainable params)")
    return (f"Rank sweep: LoRA r={choice.rank} suffices ({choice.accuracy:.3f} accuracy, "
            f"{choice.trainable_params:,.0f} trainable params) - {choice.criterion}; "
            f"best was r={choice.best_rank} ({choice.best_accuracy:.3f}, "
            f"{choice.best_trainable_params:,.0f} params)")


def data_advice(records: pd.DataFrame) -> str | None:
    """Which method wins at which training-set sizes, and below which size the large-data winner loses."""
    best = best_by_size(study_records(records, DATA_EFFICIENCY_STUDY))
    if best.empty:
        return None
    segments: list[tuple[list[int], str]] = []  # runs of consecutive sizes won by the same method
    for _, row in best.iterrows():
        if segments and segments[-1][1] == row["method"]:
            segments[-1][0].append(int(row["train_size"]))
        else:
            segments.append(([int(row["train_size"])], str(row["method"])))
    parts = ", ".join(f"{s[0]}" + (f"-{s[-1]}" if len(s) > 1 else "") + f": {m}" for s, m in segments)
    if len(segments) == 1:
        verb = "tie for" if best["tied"].iloc[0] else "is"
        return (f"Data efficiency: {segments[0][1]} {verb} the most accurate at every training-set size "
                f"tried ({parts})")
    below = segments[-1][0][0]
    return (f"Data efficiency: below {below} training examples prefer {segments[-2][1]}; from {below} on "
            f"{segments[-1][1]} leads (most accurate by size: {parts})")
