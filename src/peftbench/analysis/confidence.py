"""How sure a ranking is: a paired bootstrap over the rows the choice reads and the noise of every cost,
recomputing every score per resample.

A ranking is a choice, so it reads the validation split, never the test split (which is only reported,
beside the choice: analysis/held_out.py). Each resample draws validation row indices once and applies them
to every method (paired: all methods were evaluated on the same rows, so a hard row is hard for all of
them); OOD rows are drawn the same way. A method with several seeds also has its seeds resampled.
Validation accuracy, validation macro F1 and OOD (balanced) accuracy are recomputed from the stored per-row
predictions. With `seed_sd` (a race's ranking: analysis/race.py), a method run under one seed also gets
seed noise (analysis/seed_noise.py), so that its figures never look free of training randomness. Every
time, memory, latency and throughput varies by its own measured noise (repeats within a trial, drift
between trials, or the side-by-side pass's paired rounds: analysis/timing_noise.py), so a cost edge inside
the noise is a tie; counts (FLOPs, parameters, bytes) stay fixed. Then the dimension scores, the weighted
score and the top method follow per resample.

- P(best): the share of resamples in which a method has the highest weighted score (ties split).
- The tied set: every method whose score is >= the winner's in at least TIE_SHARE of the resamples,
  i.e. the data cannot rule out, at about the 5% level, that it is as good as the winner. The winner
  is always in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from peftbench.analysis.scores import DimensionScores, combine, method_means
from peftbench.analysis.seed_noise import seed_draws
from peftbench.analysis.timing_noise import TimingNoise, cost_draws
from peftbench.stats.predictions import decode

RESAMPLES = 500
SEED = 0
TIE_SHARE = 0.05
# What the choice reads from per-row predictions: validation and OOD figures. Test-split figures (accuracy,
# f1, the robustness drop on the first test rows) are never resampled here: they never choose.
RESAMPLED_METRICS = ("val_accuracy", "val_f1", "ood_accuracy", "ood_balanced_accuracy")


@dataclass
class Resampled:
    methods: list[str]
    values: dict[str, np.ndarray]  # metric -> (resamples, methods); NaN where a method did not measure it
    resamples: int
    without_predictions: list[str] = field(default_factory=list)  # methods kept at their stored means
    timing: TimingNoise | None = None  # the costs' noise: what drift was used, and from what


def _codes(record: Mapping, key: str) -> np.ndarray:
    """Stored labels as int16 (class ids are small): resampled copies stay a quarter of int64's size."""
    value = record.get(key)
    codes = decode(value) if isinstance(value, str) else np.empty(0, dtype=np.int64)
    return codes.astype(np.int16) if codes.size and codes.max() < 2**15 else codes


def accuracy_rows(pred: np.ndarray, lab: np.ndarray) -> np.ndarray:
    return (pred == lab).mean(axis=-1)


def macro_f1_rows(pred: np.ndarray, lab: np.ndarray, task_classes: int | None = None) -> np.ndarray:
    """Macro F1 per row of (resamples, n) arrays.

    Without `task_classes`: over the classes present in labels or predictions (sklearn's
    f1_score(average="macro") on each resample). With it (a generate task scoring verbalised labels, whose
    record stores num_labels = K): over classes 0..K-1 only, as the trial's own figure is computed
    (sklearn with labels=range(K), zero_division=0). A prediction of K is "other", an answer naming no
    class: a miss of its row's true class, never a class of its own, so one stray answer costs a little
    recall instead of adding a class with F1 0 to the average."""
    if task_classes:
        classes, always = int(task_classes), True
    else:
        classes, always = int(max(pred.max(initial=0), lab.max(initial=0))) + 1, False
    total, count = np.zeros(pred.shape[:-1]), np.zeros(pred.shape[:-1])
    for c in range(classes):
        p, y = pred == c, lab == c
        tp, both = (p & y).sum(-1), p.sum(-1) + y.sum(-1)
        present = both > 0
        total += np.where(present, 2 * tp / np.where(present, both, 1), 0.0)
        count += 1 if always else present
    return total / np.where(count > 0, count, 1)


def balanced_accuracy_rows(pred: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Mean recall over the classes present in each resample's labels."""
    classes = int(lab.max(initial=0)) + 1
    total, count = np.zeros(pred.shape[:-1]), np.zeros(pred.shape[:-1])
    for c in range(classes):
        y = lab == c
        n = y.sum(-1)
        total += np.where(n > 0, (y & (pred == c)).sum(-1) / np.where(n > 0, n, 1), 0.0)
        count += n > 0
    return total / np.where(count > 0, count, 1)


class _Draws:
    """Row indices per (kind, length), drawn once and shared by every trial: the pairing."""

    def __init__(self, resamples: int, rng: np.random.Generator):
        self.resamples, self.rng, self.cache = resamples, rng, {}

    def __call__(self, kind: str, n: int) -> np.ndarray:
        if (kind, n) not in self.cache:
            self.cache[(kind, n)] = self.rng.integers(0, n, size=(self.resamples, n), dtype=np.int32)
        return self.cache[(kind, n)]


def task_classes(record: Mapping) -> int | None:
    """K when the record scores its task's K classes and may predict "other" (= K), else None."""
    value = record.get("num_labels")
    try:
        k = float(value)
    except (TypeError, ValueError):
        return None
    return int(k) if np.isfinite(k) and k >= 1 else None


def trial_metrics(record: Mapping, draws: _Draws) -> dict[str, np.ndarray] | None:
    """metric -> (resamples,) for one trial; None when it stored no validation predictions."""
    pred, lab = _codes(record, "val_predictions"), _codes(record, "val_labels")
    if not pred.size or pred.size != lab.size:
        return None
    idx = draws("validation", pred.size)
    out = {"val_accuracy": accuracy_rows(pred[idx], lab[idx]),
           "val_f1": macro_f1_rows(pred[idx], lab[idx], task_classes(record))}
    ood_pred, ood_lab = _codes(record, "ood_predictions"), _codes(record, "ood_labels")
    if ood_pred.size and ood_pred.size == ood_lab.size:
        j = draws("ood", ood_pred.size)
        out["ood_accuracy"] = accuracy_rows(ood_pred[j], ood_lab[j])
        out["ood_balanced_accuracy"] = balanced_accuracy_rows(ood_pred[j], ood_lab[j])
    return out


def resample_metrics(records: pd.DataFrame, methods: list[str], resamples: int = RESAMPLES,
                     seed: int = SEED, seed_sd: Mapping[str, float] | None = None) -> Resampled | None:
    """Bootstrap distributions of RESAMPLED_METRICS per method; None when no trial stored predictions.
    `seed_sd`: per metric, the between-seed SD added to methods with one trial (seed_noise.py)."""
    rng = np.random.default_rng(seed)
    draws = _Draws(resamples, rng)
    values = {m: np.full((resamples, len(methods)), np.nan) for m in RESAMPLED_METRICS}
    without, any_predictions, one_seed = [], False, []
    for col, method in enumerate(methods):
        trials = [rec for rec in records[records["method"] == method].to_dict("records")]
        one_seed.append(len(trials) == 1)
        per_trial = [trial_metrics(rec, draws) for rec in trials]
        if any(t is None for t in per_trial) or not per_trial:
            without.append(method)
        for metric in RESAMPLED_METRICS:
            columns = []
            for rec, t in zip(trials, per_trial):
                if t is not None and metric in t:
                    columns.append(t[metric])
                else:  # not resampled: the trial's stored figure, as a constant
                    stored = pd.to_numeric(pd.Series([rec.get(metric)]), errors="coerce").iloc[0]
                    columns.append(np.full(resamples, float(stored)))
            mat = np.stack(columns, axis=1)
            if mat.shape[1] > 1:  # seeds resampled too, per method
                mat = np.take_along_axis(mat, rng.integers(0, mat.shape[1], size=mat.shape), axis=1)
            with np.errstate(invalid="ignore"):
                values[metric][:, col] = np.nan if np.isnan(mat).all() else np.nanmean(mat, axis=1)
        any_predictions |= any(t is not None for t in per_trial)
    if not any_predictions:
        return None
    if seed_sd:  # a stream of its own, so the row and seed draws above stay what they were
        noise = seed_draws(dict(seed_sd), one_seed, resamples, np.random.default_rng([seed, 2]))
        for metric, added in noise.items():
            values[metric] = np.clip(values[metric] + added, 0.0, 1.0)  # NaN (not measured) stays NaN
    # costs from a stream of their own: the row draws above stay what they were
    costs, timing = cost_draws(records, method_means(records), list(methods), resamples,
                               np.random.default_rng([seed, 1]))
    values.update(costs)
    return Resampled(list(methods), values, resamples, without, timing)


def bootstrap_dimension_scores(dims: DimensionScores, resampled: Resampled) -> np.ndarray:
    """(resamples, methods, dimensions) scores; resampled metrics vary, everything else stays fixed."""
    methods = list(dims.means.index)
    order = [resampled.methods.index(m) for m in methods]
    values = {}
    for cols in dims.metrics_used.values():
        for c in cols:
            fixed = pd.to_numeric(dims.means[c], errors="coerce").to_numpy(float)
            if c in resampled.values:
                boot = resampled.values[c][:, order]
                values[c] = np.where(np.isnan(boot), fixed, boot)
            else:
                values[c] = fixed
    refs = {c: dims.refs[c].to_numpy(float) for c in dims.refs}
    return combine(values, refs, dims.metrics_used, (resampled.resamples, len(methods)))


@dataclass(frozen=True)
class Confidence:
    p_best: pd.Series  # per candidate
    share_at_least_winner: pd.Series  # per candidate: share of resamples scoring >= the winner
    tied: list[str]  # the winner first, then the others tied with it, by P(best)
    resamples: int


def ranking_confidence(boot: np.ndarray, methods: list[str], candidates: list[str], counted: list[str],
                       weights: Mapping[str, float], dimension_names: list[str], winner: str) -> Confidence:
    """P(best) and the tied set among `candidates`, weighting only the `counted` dimensions."""
    rows = [methods.index(c) for c in candidates]
    cols = [dimension_names.index(d) for d in counted]
    w = np.array([float(weights[d]) for d in counted])
    scores = boot[:, rows][:, :, cols] @ (w / w.sum())  # (resamples, candidates)
    top = scores >= scores.max(axis=1, keepdims=True) - 1e-12
    p_best = (top / top.sum(axis=1, keepdims=True)).mean(axis=0)
    w_col = candidates.index(winner)
    share = (scores >= scores[:, [w_col]] - 1e-12).mean(axis=0)
    p = pd.Series(p_best, index=candidates)
    s = pd.Series(share, index=candidates)
    tied = [winner] + [m for m in p.sort_values(ascending=False, kind="stable").index
                       if m != winner and s[m] >= TIE_SHARE]
    return Confidence(p, s, tied, boot.shape[0])


def front_probability(points: pd.DataFrame, objectives, resampled: Resampled | None) -> pd.Series:
    """Per row of `points` (methods with every objective measured): the share of resamples in which it is
    on the Pareto front. Costs vary by their noise (timing_noise.py); counts stay at their means."""
    methods = list(points.index)
    signs = np.array([1.0 if o.direction == "max" else -1.0 for o in objectives])
    if resampled is None:
        return pd.Series(np.nan, index=methods, name="p_front")
    order = [resampled.methods.index(m) for m in methods]
    layers = []
    for o in objectives:
        fixed = pd.to_numeric(points[o.metric], errors="coerce").to_numpy(float)
        if o.metric in resampled.values:
            boot = resampled.values[o.metric][:, order]
            layers.append(np.where(np.isnan(boot), fixed, boot))
        else:
            layers.append(np.broadcast_to(fixed, (resampled.resamples, len(methods))))
    v = np.stack(layers, axis=-1) * signs  # (resamples, methods, objectives), higher is better
    ge = (v[:, :, None, :] >= v[:, None, :, :]).all(-1)  # [b, i, j]: i at least as good as j everywhere
    gt = (v[:, :, None, :] > v[:, None, :, :]).any(-1)
    dominated = (ge & gt).any(axis=1)  # some i dominates j
    return pd.Series((~dominated).mean(axis=0), index=methods, name="p_front")
