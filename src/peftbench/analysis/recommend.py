"""The recommender: one setup, hard limits first, then a weighted score over the six dimensions
(optionally TOPSIS beside it), each method's probability of being best from a paired bootstrap, the
methods tied with the winner, then configuration advice read off the sweep studies.

Every step of the choice reads validation-side figures (validation split, OOD set, costs); the winner's
test accuracy and F1 are then reported beside it (`Recommendation.held_out`), never fed back.
Scores are on fixed scales (see scores.py), so a limit removes candidates without changing the others'
dimension scores; a dimension counts only when every remaining candidate has it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from peftbench.analysis.confidence import (
    RESAMPLES,
    SEED,
    TIE_SHARE,
    Resampled,
    bootstrap_dimension_scores,
    ranking_confidence,
    resample_metrics,
)
from peftbench.analysis.curves import (
    DATA_EFFICIENCY_STUDY,
    RANK_SWEEP_STUDY,
    best_by_size,
    smallest_sufficient_rank,
    study_records,
)
from peftbench.analysis.held_out import HeldOut, held_out
from peftbench.analysis.scores import (
    DIMENSION_NAMES,
    DIMENSIONS,
    DimensionScores,
    counted_dimensions,
    dimension_scores,
    memory_metric,
    weighted_scores,
)
from peftbench.analysis.seed_noise import SeedNoise, seed_noise
from peftbench.analysis.selection import select_records
from peftbench.analysis.timing_noise import side_by_side_usable
from peftbench.analysis.timing_trust import RULE as TIMING_RULE
from peftbench.analysis.timing_trust import timing_summary
from peftbench.analysis.topsis import topsis
from peftbench.errors import PeftbenchError

DEFAULT_STUDY = "tradeoff"
CHOICE_NOTE = ("chosen on validation-side figures only (validation split; OOD set and general text for "
               "generalization; costs); the test figures beside the winner are reported, never chosen on, "
               "and the robustness drop (first test rows) is reported only")


@dataclass(frozen=True)
class Limits:
    """Hard limits; None = no limit. Memory is training memory: the CUDA peak on GPU stores, else the RSS
    peak net of the process's own baseline (peak_rss_net_mb). min_accuracy is validation accuracy (exact
    match for --task generate): a limit is a choice, so it never reads the test split."""

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
    "min_accuracy": ("val_accuracy", False),
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
    tied: list[str] = field(default_factory=list)  # the winner and the methods statistically tied with it
    setup_label: str | None = None
    resamples: int = 0  # bootstrap resamples behind ranking["p_best"]; 0 = no per-row predictions
    held_out: HeldOut | None = None  # the winner's test figures, reported beside the choice, never chosen on
    # The costs' noise behind P(best) and the tied set: per kind of cost, its drift and what it was measured
    # from (analysis/timing_noise.py), and the side-by-side pass when inference reads it. Empty: no bootstrap.
    drift: list[str] = field(default_factory=list)

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
        if side_by_side_usable(records):
            return "side_latency_p50_ms (the side-by-side pass)"
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


HOW_TO_MEASURE = {
    "data_efficiency": "run `peftbench study data-efficiency --methods {methods}`",
    "generalization": "re-run them with an OOD set (--ood-dataset)",
}


def coverage_notes(dims: DimensionScores, weights: Mapping[str, float], candidates: list[str],
                   records: pd.DataFrame | None = None) -> list[str]:
    """Say plainly which weighted dimensions or metrics were left out, for whom, and how to measure them."""
    notes = []
    scores = dims.scores.loc[candidates]
    for dim in DIMENSION_NAMES:
        if weights.get(dim, 0) <= 0:
            continue
        missing = list(scores.index[scores[dim].isna()])
        if len(missing) == len(scores):
            why = " (no data-efficiency results for these methods)" if dim == "data_efficiency" else ""
            notes.append(f"{dim} was not measured{why}: left out, weights renormalised over the measured "
                         "dimensions")
        elif missing:
            how = HOW_TO_MEASURE.get(dim, "re-run them with the current peftbench").format(
                methods=",".join(missing))
            notes.append(f"{dim} left out for every method: not measured for {', '.join(missing)} (a score "
                         f"measured for only some methods would favour the others); to count it, {how}")
        for col, lacking in dims.left_out.items():
            if any(m.column == col for m in DIMENSIONS[dim]) and len(missing) < len(scores):
                notes.append(f"{dim} uses {', '.join(dims.metrics_used[dim]) or 'nothing'}: {col} left out for "
                             f"every method, not measured for {', '.join(lacking)}")
    if weights.get("computational_efficiency", 0) > 0 or weights.get("inference_efficiency", 0) > 0:
        if records is not None:
            notes.extend(timing_summary(records, candidates))
        else:
            notes.extend(note for m in candidates for note in dims.timing_notes.get(m, []))
        notes.append("timings: " + TIMING_RULE)
    if records is not None and weights.get("computational_efficiency", 0) > 0:
        memory = memory_metric(records)
        if memory == "peak_rss_mb":
            notes.append("training memory is the raw RSS peak (these trials carry no peak_rss_net_mb)")
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


@dataclass
class Prepared:
    """Everything a ranking needs that does not depend on the weights: computed once for all scenarios."""

    records: pd.DataFrame  # every study of the chosen setup (for the sweeps' advice)
    selected: pd.DataFrame  # the ranked study
    label: str
    setup_label: str | None
    dims: DimensionScores
    notes: list[str]
    resampled: Resampled | None
    boot: np.ndarray | None  # (resamples, methods, dimensions)
    reported: dict[str, HeldOut] = field(default_factory=dict)  # held_out per method, computed when asked
    seed_noise: SeedNoise | None = None  # hierarchical: the seed noise one-seed configurations were given

    def held_out(self, method: str) -> HeldOut:
        """The method's test figures in the ranked study (computed once: the scenarios share winners)."""
        if method not in self.reported:
            self.reported[method] = held_out(self.selected, method)
        return self.reported[method]


def prepare(records: pd.DataFrame, study: str | None = None, *, setup: str | None = None,
            model: str | None = None, dataset: str | None = None, include_collapsed: bool = False,
            resamples: int = RESAMPLES, seed: int = SEED, hierarchical: bool = True) -> Prepared:
    """Select one setup and study, score it, and bootstrap its scores (resamples=0 skips the bootstrap).
    hierarchical: configurations with several seeds have their seeds resampled, then the rows, and a one-seed
    configuration gets seed noise (seed_noise.py), so that one seed never ranks as if training were
    deterministic; False resamples rows only (the spread a one-seed interval shows)."""
    if records.empty:
        raise PeftbenchError("no finished trials to recommend from")
    sel = select_records(records, setup, model, dataset, include_collapsed)
    if sel.records.empty:
        raise PeftbenchError("no trials left to rank: " + " ".join(sel.notes))
    selected, label = select_study(sel.records, study)
    dims = dimension_scores(selected, sel.records)
    noise = seed_noise(selected) if hierarchical else None
    resampled = (resample_metrics(selected, list(dims.means.index), resamples, seed, noise and noise.sd)
                 if resamples > 0 else None)
    boot = bootstrap_dimension_scores(dims, resampled) if resampled is not None else None
    notes = list(sel.notes)
    if resampled is not None and resampled.without_predictions:
        notes.append("no per-row validation predictions stored for " + ", ".join(resampled.without_predictions)
                     + ": their figures are held fixed in the bootstrap")
    if noise is not None and resampled is not None:
        notes.append(noise.text())
    return Prepared(sel.records, selected, label, sel.setup_label, dims, notes, resampled, boot, seed_noise=noise)


def rank(prep: Prepared, weights: Mapping[str, float], limits: Limits = Limits(),
         use_topsis: bool = False) -> Recommendation:
    """Rank the prepared methods for these (normalised) weights under these limits."""
    limits.validate()
    dims = prep.dims
    kept, excluded = apply_limits(dims.means, limits, prep.selected)
    ranking = weighted_scores(dims.scores.loc[kept], weights).join(dims.scores.loc[kept])
    notes = prep.notes + coverage_notes(dims, weights, kept, prep.selected)
    if use_topsis and kept:
        closeness, note = topsis_column(dims.means.loc[kept], weights)
        notes.append(note)
        if closeness is not None:
            ranking["topsis"] = closeness
    ranking = ranking.sort_index().sort_values("score", ascending=False, kind="stable", na_position="last")
    rec = Recommendation(prep.label, dict(weights), ranking, excluded, notes, setup_label=prep.setup_label)
    counted = counted_dimensions(dims.scores.loc[kept], weights) if kept else []
    if rec.top is not None and prep.boot is not None and counted and ranking["score"].notna().all():
        conf = ranking_confidence(prep.boot, list(dims.means.index), list(ranking.index), counted, weights,
                                  list(DIMENSION_NAMES), rec.top)
        rec.ranking["p_best"] = conf.p_best
        rec.ranking["share_tied"] = conf.share_at_least_winner  # scores >= the winner's: a race's rule reads it
        rec.tied = conf.tied
        rec.resamples = conf.resamples
        rec.drift = prep.resampled.timing.lines() if prep.resampled.timing is not None else []
        rec.notes.append(f"P(best): share of {conf.resamples} paired bootstrap resamples of the validation (and "
                         f"OOD) rows (seeds resampled first; one seed: seed noise added), every time, memory and speed drawn with its own "
                         f"noise, in which the method scores highest; tied with the winner: scores at least as "
                         f"high in >= {TIE_SHARE:.0%} of them")
    elif rec.top is not None:
        rec.tied = [rec.top]
        if not counted:
            rec.notes.append("no weighted dimension is measured for every candidate: no score to rank by")
        elif prep.boot is None:
            rec.notes.append("no per-row validation predictions stored: no probability of being best (re-run "
                             "the trials with the current peftbench)")
    if rec.top is not None:
        rec.advice = configuration_advice(prep.records, dims.means, rec.top)
        rec.held_out = prep.held_out(rec.top)
        rec.notes.append(CHOICE_NOTE)
    return rec


def recommend(records: pd.DataFrame, weights: Mapping[str, float], limits: Limits = Limits(),
              study: str | None = None, use_topsis: bool = False, **selection) -> Recommendation:
    """Rank the methods of a study for these weights under these limits. `selection`: setup, model,
    dataset, include_collapsed, resamples, seed (see `prepare`)."""
    limits.validate()
    return rank(prepare(records, study, **selection), weights, limits, use_topsis)


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
    """The smallest sufficient LoRA rank, chosen on validation; test accuracy is only reported."""
    choice = smallest_sufficient_rank(study_records(records, RANK_SWEEP_STUDY))
    if choice is None:
        return None
    if choice.rank == choice.best_rank:
        return (f"Rank sweep: LoRA r={choice.rank} is the smallest rank with the best validation accuracy "
                f"({choice.val_accuracy:.3f}; test {choice.accuracy:.3f}, "
                f"{choice.trainable_params:,.0f} trainable params)")
    return (f"Rank sweep: LoRA r={choice.rank} suffices (validation {choice.val_accuracy:.3f}, test "
            f"{choice.accuracy:.3f}, {choice.trainable_params:,.0f} trainable params) - {choice.criterion}; "
            f"best on validation was r={choice.best_rank} ({choice.best_val_accuracy:.3f}, test "
            f"{choice.best_accuracy:.3f}, {choice.best_trainable_params:,.0f} params)")


def data_advice(records: pd.DataFrame) -> str | None:
    """Which method wins at which training-set sizes (on validation), and below which size the large-data
    winner loses."""
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
        return (f"Data efficiency: {segments[0][1]} {verb} the most accurate on validation at every "
                f"training-set size tried ({parts})")
    below = segments[-1][0][0]
    return (f"Data efficiency: below {below} training examples prefer {segments[-2][1]}; from {below} on "
            f"{segments[-1][1]} leads (most accurate on validation by size: {parts})")
