"""Six dimension scores in [0, 1] per method, each from named measured metrics on a fixed, meaningful scale.

Scores grade a method against a reference that does not depend on which other methods were run: accuracy
from a constant predictor's value to 1, OOD balanced accuracy from 1/K, parameters on a log scale up to the
base model, and costs on a log scale around a fixed reference (full fine-tuning's own cost in the trial's
setup for FLOPs and memory, a stated constant for wall times), never the cheapest method measured: adding or
removing a method changes no other method's score. Two methods inside each other's noise score nearly alike.

A metric counts in a dimension only when every method that has the dimension measured it; a dimension
nobody measured stays missing (NaN) and is never filled in. `weighted_scores` then leaves a dimension out
for every candidate unless every candidate has it, so an unmeasured method is never favoured.

Scores feed choices, so they read only validation-side figures: the validation split (performance, data
efficiency), the separate OOD set and the general-text sample (generalization), and costs. The test split is
read once per trial for the reported figures, shown beside the choice (analysis/held_out.py), never
scored; so is the robustness drop, whose rows are the first test rows (GENERALIZATION_CHOICE says why).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from peftbench.analysis.curves import (
    DATA_EFFICIENCY_STUDY,
    data_efficiency_summary,
    matched_curves,
    study_records,
)
from peftbench.analysis.timing_noise import SIDE_LATENCY, SIDE_THROUGHPUT, side_by_side_usable
from peftbench.analysis.timing_trust import RULE as TIMING_RULE
from peftbench.analysis.timing_trust import clean_timings, merge_agrees, timing_notes
from peftbench.stats.predictions import decode
from peftbench.stats.summary import numeric_column


@dataclass(frozen=True)
class Metric:
    column: str
    direction: str  # "max": higher is better, "min": lower is better (for Pareto and TOPSIS)
    scale: str  # a key of SCALE_NOTES: how a value becomes a score


DIMENSIONS: dict[str, tuple[Metric, ...]] = {
    "parameter_efficiency": (Metric("trainable_params", "min", "log_params"),),
    "computational_efficiency": (Metric("train_seconds", "min", "log_seconds"),
                                 Metric("train_memory_mb", "min", "log_full_memory"),
                                 Metric("flops_per_step", "min", "log_full_flops")),
    "performance": (Metric("val_accuracy", "max", "above_chance"), Metric("val_f1", "max", "f1_above_chance")),
    # The robustness drop is not here: its rows are the first test rows (reported only, REPORTED_ONLY).
    "generalization": (Metric("ood_balanced_accuracy", "max", "balanced_above_chance"),
                       Metric("forgetting", "min", "forgetting_nats")),
    "data_efficiency": (Metric("val_accuracy_at_smallest_size", "max", "above_chance"),
                        Metric("val_normalized_auc", "max", "above_chance")),
    "inference_efficiency": (Metric("deployed_latency_ms", "min", "log_latency"),
                             Metric("deployed_throughput_per_s", "max", "log_throughput"),
                             Metric("adapter_bytes", "min", "log_bytes")),
}
DIMENSION_NAMES: tuple[str, ...] = tuple(DIMENSIONS)
METRICS: dict[str, Metric] = {m.column: m for ms in DIMENSIONS.values() for m in ms}
# Why generalization may take part in a choice, and what it leaves out (`peftbench dimensions`, the report).
GENERALIZATION_CHOICE = ("kept in the choice: OOD balanced accuracy (a separate dataset, never the test split) "
                         "and, for decoders, forgetting (a general-text sample), so a generalization weight still "
                         "counts; left out: the robustness drop, whose perturbed rows are the first test rows "
                         "(reported only). The price: the OOD set helps choose, so the winner's OOD figure is not "
                         "an unbiased estimate; its test figures, which no choice reads, are.")

# Decoders: general-text cross-entropy up by ln 2 nats per token (its perplexity doubled) scores 0
FORGETTING_ZERO_NATS = float(np.log(2.0))
# Costs: score = 0.5 - log2(value / reference) / COST_OCTAVES (throughput: + log2), clipped to [0, 1]. Each
# doubling of a cost takes COST_STEP off (1/20 = 0.05), wherever the reference sits: differences between two
# methods depend only on their ratio, so the reference places the midpoint and nothing else (unless a value
# is more than 2^10 = 1024 times off it and clips). 0.05 per doubling is close to what a doubling of trainable
# parameters moves parameter efficiency (1/log2(110M) = 0.037 for a BERT-base).
COST_OCTAVES = 20.0
COST_STEP = 1.0 / COST_OCTAVES
# Full fine-tuning's training state per base parameter: fp32 weight, gradient and two Adam moments.
FULL_FT_BYTES_PER_PARAM = 16.0
# Wall times have no figure in the setup to anchor on (they depend on the machine): stated constants.
TRAIN_SECONDS_REF = 600.0
LATENCY_MS_REF = 10.0
THROUGHPUT_PER_S_REF = 100.0
# scale -> (reference: a scale_refs column or a constant, higher is better)
COST_SCALES = {"log_full_flops": ("full_ft_flops", False), "log_full_memory": ("full_ft_memory_mb", False),
               "log_seconds": (TRAIN_SECONDS_REF, False), "log_latency": (LATENCY_MS_REF, False),
               "log_throughput": (THROUGHPUT_PER_S_REF, True)}
COST_REFERENCE = (f"each cost is scored against a fixed reference, never against the other methods run: 0.5 at "
                  "full fine-tuning's own cost in the trial's setup, derived, not measured (FLOPs: 6 x "
                  "base_params x the batch's tokens; training memory: 16 bytes x base_params), or at a stated "
                  f"constant for wall times ({TRAIN_SECONDS_REF:g} s training, {LATENCY_MS_REF:g} ms latency, "
                  f"{THROUGHPUT_PER_S_REF:g} rows or tokens/s throughput); each doubling moves the score by "
                  f"{1 / COST_OCTAVES:g}, so two methods' difference depends only on their ratio, and adding or "
                  "removing a method changes no other method's score")
_COST = f"clipped to [0, 1]: each doubling moves the score by {COST_STEP:g}, whoever else was run"
SCALE_NOTES = {
    "above_chance": "(value - c) / (1 - c), c = val_majority_rate (what predicting the most common class "
                    "scores; older trials without it: the majority share of the stored validation labels), "
                    "clipped to [0, 1]",
    "f1_above_chance": "(value - c) / (1 - c), c = the constant predictor's macro F1, 2p / ((1 + p) K) "
                       "for majority rate p and K classes",
    "balanced_above_chance": "(value - 1/K) / (1 - 1/K) for K classes (0.5 to 1 for two): balanced "
                             "accuracy is 1/K for any constant predictor",
    "forgetting_nats": f"1 - forgetting / ln 2, clipped to [0, 1]: general-text cross-entropy unchanged (or "
                       f"lower) = 1, its perplexity doubled (+{FORGETTING_ZERO_NATS:.3f} nats per token) = 0",
    "log_params": "1 - log(value) / log(base-model parameters): 1 parameter = 1, the whole model = 0",
    "log_bytes": "1 - log(value) / log(base-model bytes, base_params x 4): 1 byte = 1, the whole fp32 "
                 "model = 0",
    "log_full_flops": "0.5 - log2(value / (6 x base_params x flops_batch_tokens)) / 20, the reference being "
                      "full fine-tuning's FLOPs for the same batch (6 per parameter per token: forward 2, "
                      f"backward 4); {_COST}",
    "log_full_memory": "0.5 - log2(value / (16 bytes x base_params)) / 20, the reference being full fine-"
                       "tuning's fp32 training state (weights, gradients, two Adam moments; activations not "
                       f"counted); {_COST}",
    "log_seconds": f"0.5 - log2(value / {TRAIN_SECONDS_REF:g} s) / 20 (a stated constant: wall time depends on "
                   f"the machine, which no setup figure gives); {_COST}",
    "log_latency": f"0.5 - log2(value / {LATENCY_MS_REF:g} ms) / 20 (a stated constant); {_COST}",
    "log_throughput": f"0.5 + log2(value / {THROUGHPUT_PER_S_REF:g} per s) / 20 (a stated constant); {_COST}",
}

# Columns that identify a trial rather than measure it: never averaged.
IDENTITY_COLUMNS = {"trial_id", "study", "method", "family", "seed", "status", "error", "attempts", "model",
                    "device", "provenance", "record_version", "train_size", "eval_size", "setup",
                    "setup_label", "tune_group", "tune_budget", "collapsed", "collapse_reason"}


def scoring_notes() -> dict[str, str]:
    """Dimension -> one line on how its score is computed (shown by `peftbench dimensions` and the report)."""
    def notes(dim: str) -> str:
        by_scale: dict[str, list[str]] = {}
        for m in DIMENSIONS[dim]:
            by_scale.setdefault(m.scale, []).append(m.column)
        return "; ".join(f"{', '.join(cols)}: {SCALE_NOTES[scale]}" for scale, cols in by_scale.items())

    return {
        "parameter_efficiency": f"{notes('parameter_efficiency')} (log10 scale)",
        "computational_efficiency": "training memory = peak_cuda_allocated_mb on GPU, else peak_rss_net_mb "
                                    f"(net of the process baseline); {notes('computational_efficiency')}; "
                                    "mean of the three",
        "performance": "validation split (--task generate: val_accuracy is exact match), never the test "
                       f"split, which is reported beside the choice; {notes('performance')}; mean of the two",
        "generalization": "OOD balanced accuracy (a separate dataset, not the test split), and for decoders "
                          "forgetting (general-text cross-entropy after - before training); the robustness "
                          "drop reads the first test rows, so it is reported, never scored; "
                          f"{notes('generalization')}; mean of those measured",
        "data_efficiency": "from the data-efficiency study only (missing if not run), on its validation "
                           "accuracy per training-set size (its test rows are reported only); "
                           f"{notes('data_efficiency')}; mean of the two",
        "inference_efficiency": "latency and throughput of the deployed form (merged when the method can "
                                "merge and the merged outputs match the unmerged ones); "
                                f"{notes('inference_efficiency')}; mean of the three",
    }


COUNTING_RULE = ("A metric counts in a dimension only when every method with that dimension measured it, and a "
                 "weighted dimension counts only when every ranked method has it; otherwise it is left out "
                 "for all of them, with a note naming who lacks it. Timings: " + TIMING_RULE + ".")


def memory_metric(records: pd.DataFrame) -> str:
    """The training-memory column that means something here: the CUDA peak when every trial ran on a GPU,
    else the RSS peak net of the process's own baseline (the raw peak only for stores that predate it)."""
    if "device" in records and "peak_cuda_allocated_mb" in records and len(records):
        on_gpu = records["device"].astype(str).str.startswith("cuda").all()
        if on_gpu and pd.to_numeric(records["peak_cuda_allocated_mb"], errors="coerce").notna().all():
            return "peak_cuda_allocated_mb"
    if "peak_rss_net_mb" in records and pd.to_numeric(records["peak_rss_net_mb"], errors="coerce").notna().all():
        return "peak_rss_net_mb"
    return "peak_rss_mb"


def _deployed(records: pd.DataFrame, plain: str, merged: str, side: str) -> pd.Series:
    """The side-by-side pass's figure when every trial has one from one pass (all methods timed at the same
    moments: analysis/timing_noise.py); else the merged measurement where the method can merge, it was
    measured and the merged model's outputs match the unmerged model's (timing_trust.merge_agrees), else the
    plain one."""
    if side_by_side_usable(records):
        return numeric_column(records, side)
    can_merge = records["can_merge"].fillna(False).astype(bool) if "can_merge" in records else False
    merged_values = numeric_column(records, merged)
    counts = can_merge & merged_values.notna() & merge_agrees(records)
    return merged_values.where(counts, numeric_column(records, plain))


def method_means(records: pd.DataFrame) -> pd.DataFrame:
    """One row per method (first-seen order): the mean over its trials of every numeric measurement,
    plus train_memory_mb, deployed_latency_ms and deployed_throughput_per_s. Contended timings are left out
    (timing_trust.clean_timings): the mean is over the method's clean trials, NaN where it has none."""
    frame = clean_timings(records)
    frame["train_memory_mb"] = numeric_column(frame, memory_metric(frame))
    frame["deployed_latency_ms"] = _deployed(frame, "latency_p50_ms", "merged_latency_p50_ms", SIDE_LATENCY)
    frame["deployed_throughput_per_s"] = _deployed(frame, "throughput_per_s", "merged_throughput_per_s",
                                                   SIDE_THROUGHPUT)
    columns = {}
    for col in frame.columns:
        if col in IDENTITY_COLUMNS:
            continue
        if frame[col].map(lambda v: isinstance(v, (str, dict, list))).any():
            continue  # predictions, notes, nested dicts: not measurements to average
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.notna().any():
            columns[col] = values.astype(float)
    numeric = pd.DataFrame(columns, index=frame.index)
    numeric["method"] = frame["method"]
    return numeric.groupby("method", sort=False).mean()


def _label_facts(records: pd.DataFrame) -> pd.DataFrame:
    """Per method, from its first trial's stored labels: classes K and the validation majority share (the
    test labels only for trials that stored no validation labels: labels, never predictions, and the same
    for every method), and the OOD classes."""
    rows = {}
    for method, grp in records.groupby("method", sort=False):
        row = {"classes": np.nan, "val_majority": np.nan, "ood_classes": np.nan}
        for _, rec in grp.iterrows():
            labels = [decode(rec.get(c)) for c in ("val_labels", "test_labels") if isinstance(rec.get(c), str)]
            labels = [lab for lab in labels if lab.size]
            if labels and np.isnan(row["classes"]):
                row["classes"] = float(max(int(lab.max()) for lab in labels) + 1)
                first = labels[0]
                row["val_majority"] = float(np.bincount(first).max() / first.size)
            ood = decode(rec.get("ood_labels")) if isinstance(rec.get("ood_labels"), str) else np.empty(0)
            if ood.size and np.isnan(row["ood_classes"]):
                row["ood_classes"] = float(np.unique(ood).size)
        rows[method] = row
    return pd.DataFrame.from_dict(rows, orient="index", columns=["classes", "val_majority", "ood_classes"])


def scale_refs(records: pd.DataFrame, means: pd.DataFrame) -> pd.DataFrame:
    """Per method, the fixed reference points of the scales: chance accuracy and F1, OOD chance, base size,
    full fine-tuning's FLOPs per step and training-state memory in the method's own setup.

    Chance accuracy is val_majority_rate; without it, the stored validation labels' majority share; without
    labels, 0 (the raw value). Classes default to 2 when no labels were stored."""
    facts = _label_facts(records).reindex(means.index)
    p = numeric_column(means, "val_majority_rate").fillna(facts["val_majority"])
    classes = facts["classes"].fillna(2.0).clip(lower=2.0)
    ood_classes = facts["ood_classes"].fillna(classes).clip(lower=2.0)
    # Every reference is the method's own (its setup's) figure, never another method's.
    base = numeric_column(means, "base_params").fillna(numeric_column(means, "total_params"))
    base_bytes = (base * 4.0).clip(lower=numeric_column(means, "adapter_bytes"))
    full_flops = 6.0 * base * numeric_column(means, "flops_batch_tokens")
    full_memory = FULL_FT_BYTES_PER_PARAM * base / 2.0 ** 20
    return pd.DataFrame({"chance_accuracy": p.fillna(0.0), "chance_f1": (2 * p / ((1 + p) * classes)).fillna(0.0),
                         "chance_balanced": 1.0 / ood_classes, "base_params": base, "base_bytes": base_bytes,
                         "full_ft_flops": full_flops, "full_ft_memory_mb": full_memory}, index=means.index)


def _above(values: np.ndarray, floor: np.ndarray) -> np.ndarray:
    span = np.where(floor < 1, 1 - floor, np.nan)
    return np.clip((values - floor) / span, 0.0, 1.0)


def _log_share(values: np.ndarray, top: np.ndarray) -> np.ndarray:
    top = np.where(top > 1, top, np.nan)
    return np.clip(1 - np.log(np.clip(values, 1.0, None)) / np.log(top), 0.0, 1.0)


def scale_values(metric: Metric, values: np.ndarray, refs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Scores in [0, 1] (NaN where unmeasured) for values of shape (..., methods); refs per method.

    Vectorised so the bootstrap can score every resample at once. No scale looks across methods (axis -1):
    a method's score is a function of its own value and its own references only."""
    v = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric.scale == "above_chance":
            return _above(v, refs["chance_accuracy"])
        if metric.scale == "f1_above_chance":
            return _above(v, refs["chance_f1"])
        if metric.scale == "balanced_above_chance":
            return _above(v, refs["chance_balanced"])
        if metric.scale == "forgetting_nats":
            return np.clip(1 - v / FORGETTING_ZERO_NATS, 0.0, 1.0)
        if metric.scale == "log_params":
            return _log_share(v, refs["base_params"])
        if metric.scale == "log_bytes":
            return _log_share(v, refs["base_bytes"])
        if metric.scale in COST_SCALES:
            ref, higher_better = COST_SCALES[metric.scale]
            ref = refs[ref] if isinstance(ref, str) else ref
            octaves = np.log2(np.where(v > 0, v, np.nan) / np.where(np.asarray(ref) > 0, ref, np.nan))
            return np.clip(0.5 + (octaves if higher_better else -octaves) * COST_STEP, 0.0, 1.0)
    raise ValueError(f"unknown scale {metric.scale!r}")


def combine(values: Mapping[str, np.ndarray], refs: Mapping[str, np.ndarray],
            used: Mapping[str, list[str]], shape: tuple[int, ...]) -> np.ndarray:
    """Dimension scores, shape `shape` + (dimensions,): the mean of each dimension's used metric scores.
    `shape` is (methods,) for point estimates or (resamples, methods) for the bootstrap."""
    dims = []
    for dim in DIMENSION_NAMES:
        parts = [np.broadcast_to(scale_values(METRICS[c], values[c], refs), shape) for c in used[dim]]
        if parts:
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: a method lacking the dimension
                dims.append(np.nanmean(np.stack(parts), axis=0))
        else:
            dims.append(np.full(shape, np.nan))
    return np.stack(dims, axis=-1)


@dataclass(frozen=True)
class DimensionScores:
    """scores: methods x six dimensions (NaN = not measured); metrics_used: which columns fed each;
    left_out: metric -> the methods that lack it (measured for only some, so left out for all; a value whose
    scale reference is missing, e.g. FLOPs without flops_batch_tokens, counts as lacking)."""

    scores: pd.DataFrame
    metrics_used: dict[str, list[str]]
    means: pd.DataFrame
    refs: pd.DataFrame = field(default_factory=pd.DataFrame)
    left_out: dict[str, list[str]] = field(default_factory=dict)
    timing_notes: dict[str, list[str]] = field(default_factory=dict)  # method -> timings left out, and why

    def missing(self) -> dict[str, list[str]]:
        """Dimension -> methods without a score for it (only dimensions with any missing)."""
        return {d: list(self.scores.index[self.scores[d].isna()]) for d in DIMENSION_NAMES
                if self.scores[d].isna().any()}


def dimension_scores(records: pd.DataFrame, all_records: pd.DataFrame | None = None) -> DimensionScores:
    """Scores for the methods in `records`; data efficiency comes from the data-efficiency study in
    `all_records` (default: `records`), matched by configuration (curves.matched_curves)."""
    means = method_means(records)
    de_rows = study_records(records if all_records is None else all_records, DATA_EFFICIENCY_STUDY)
    curves = matched_curves(data_efficiency_summary(de_rows), de_rows, records)
    means = means.join(curves[["val_accuracy_at_smallest_size", "val_normalized_auc"]], how="left")
    refs = scale_refs(records, means)
    scorable = means.copy()
    for metric in METRICS.values():
        ref = COST_SCALES.get(metric.scale, (None,))[0]
        if isinstance(ref, str) and metric.column in scorable:
            scorable[metric.column] = scorable[metric.column].where(refs[ref].notna())
    used: dict[str, list[str]] = {}
    left_out: dict[str, list[str]] = {}
    for dim, metrics in DIMENSIONS.items():
        present = [m.column for m in metrics if m.column in scorable and scorable[m.column].notna().any()]
        having = scorable[present].notna().any(axis=1) if present else pd.Series(False, index=means.index)
        used[dim] = []
        for col in present:
            lacking = list(means.index[having & scorable[col].isna()])
            if lacking:
                left_out[col] = lacking
            else:
                used[dim].append(col)
    values = {c: numeric_column(scorable, c).to_numpy() for cs in used.values() for c in cs}
    ref_arrays = {c: refs[c].to_numpy(float) for c in refs}
    matrix = combine(values, ref_arrays, used, (len(means),))
    scores = pd.DataFrame(matrix, index=means.index, columns=list(DIMENSION_NAMES), dtype=float)
    return DimensionScores(scores, used, means, refs, left_out, timing_notes(records))


def counted_dimensions(scores: pd.DataFrame, weights: Mapping[str, float]) -> list[str]:
    """The weighted dimensions every row (candidate) has: the only ones that may count."""
    return [d for d in scores.columns if float(weights.get(d, 0.0)) > 0 and scores[d].notna().all()]


def weighted_scores(scores: pd.DataFrame, weights: Mapping[str, float]) -> pd.DataFrame:
    """score = sum(w * s) / sum(w) over the weighted dimensions measured for EVERY row; coverage = that
    sum(w) / sum of all weights (the same for every row). A dimension some candidate lacks is left out for
    all of them, so a missing measurement can never lift a method above one that was measured."""
    counted = counted_dimensions(scores, weights)
    w = pd.Series({d: float(weights.get(d, 0.0)) for d in scores.columns})
    covered = float(w[counted].sum())
    if covered > 0:
        score = scores[counted].mul(w[counted], axis=1).sum(axis=1) / covered
    else:
        score = pd.Series(np.nan, index=scores.index)
    total = float(w.sum())
    return pd.DataFrame({"score": score, "coverage": covered / total if total > 0 else np.nan},
                        index=scores.index)
