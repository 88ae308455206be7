"""95% intervals and paired tests computed from the per-row predictions a trial stores.

Why from rows: one seed is the default, and a t-interval over one seed does not exist, yet 800 test rows
carry about ±2.8 points of sampling noise at 80% accuracy. Every figure computed from predictions
(accuracy, macro-F1, OOD balanced accuracy, robustness drop, validation accuracy) therefore gets an
interval from a bootstrap over its rows, and, with several seeds, the spread over seeds on top.

Combining rows and seeds (`combined_interval`): with S seeds evaluated on the same N rows, the figure is
the mean over seeds, and its standard error is

    se_total = sqrt(se_rows**2 + s_seeds**2 / S)

se_rows is the bootstrap standard error of the seed-averaged figure (the rows resampled jointly for every
seed, since they are the same rows); s_seeds is the standard deviation of the per-seed figures. The
interval is mean ± t * se_total with Welch-Satterthwaite degrees of freedom between the two parts (N-1
for rows, S-1 for seeds), so a real seed spread over few seeds widens it as a t-interval over seeds would.
The per-seed spread also holds the row noise a seed does not share with the others, so this errs on the
wide side. That was chosen on purpose: in a simulation with 3 seeds and 400 rows, subtracting that part
(a two-way random-effects split) covered the truth 88% of the time under a moderate seed effect, this
form 92%, and 98% without a seed effect. With one seed the interval is the bootstrap's own (BCa)
interval; an accuracy of 0% or 100% (no resample can differ) gets the Wilson interval instead.

Differs from Full (`paired_row_test`): per row, the correctness of the method minus that of Full on the
same row and seed, averaged over the seeds both have. The test of "mean difference = 0" is a paired t-test
over rows (one seed: exactly scipy's ttest_1samp on the differences); with several seeds the same
se_total as above (the spread of the per-seed mean differences as the seed part), Welch-Satterthwaite df.
Identical predictions have zero variance and get p = 1 (a difference of one sign on every row: the exact
sign test). Holm's step-down correction (`holm`) is applied
across the methods a table compares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats as sps

from peftbench.stats.predictions import decode

N_RESAMPLES = 2000
RANDOM_SEED = 20240917  # fixed: the same store always gives the same intervals
CONFIDENCE = 0.95


# --- row statistics: vectorised over any leading (resample) axes, rows on the last axis ------------------
def _confusion(y: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrices (..., k, k) [true, predicted] for every leading index, by one bincount."""
    if k * k <= 64:  # few classes: one pass per cell over a small-integer code beats an int64 bincount
        code = np.asarray(y, dtype=np.int16) * k + np.asarray(p, dtype=np.int16)
        counts = np.stack([(code == j).sum(axis=-1) for j in range(k * k)], axis=-1)
        return counts.reshape(*code.shape[:-1], k, k)
    y, p = np.broadcast_arrays(np.asarray(y, dtype=np.int64), np.asarray(p, dtype=np.int64))
    lead = y.shape[:-1]
    m = int(np.prod(lead)) if lead else 1
    flat = (y * k + p).reshape(m, y.shape[-1]) + (np.arange(m, dtype=np.int64) * k * k)[:, None]
    return np.bincount(flat.ravel(), minlength=m * k * k).reshape(*lead, k, k)


def accuracy(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    return (np.asarray(y) == np.asarray(p)).mean(axis=-1)


def make_macro_f1(classes: np.ndarray, width: int | None = None) -> Callable:
    """Macro-F1 over `classes` (the labels present in the full sample, true or predicted, as sklearn
    averages them); a class with no true and no predicted row in a resample scores 0. `width`: the
    confusion matrix's size when predictions reach past `classes` (a generated answer naming no class)."""
    classes = np.asarray(classes, dtype=np.int64)
    k = max(int(classes.max()) + 1 if classes.size else 1, width or 0)

    def macro_f1(y, p, axis=-1):
        cm = _confusion(y, p, k)
        tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(float)
        fp = cm.sum(axis=-2) - tp
        fn = cm.sum(axis=-1) - tp
        denom = 2 * tp + fp + fn
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        return f1[..., classes].mean(axis=-1)

    return macro_f1


def make_balanced_accuracy(k: int) -> Callable:
    """Recall per class averaged over the classes present (as sklearn's balanced_accuracy_score)."""

    def balanced_accuracy(y, p, axis=-1):
        cm = _confusion(y, p, k)
        tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(float)
        support = cm.sum(axis=-1)
        recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
        present = (support > 0).sum(axis=-1)
        return recall.sum(axis=-1) / np.maximum(present, 1)

    return balanced_accuracy


def mean_of_rows(d: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(d, dtype=float).mean(axis=-1)


# --- intervals ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    mean: float
    ci_low: float
    ci_high: float
    n_seeds: int
    n_rows: int
    se: float

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def combined_interval(samples: Sequence[tuple[np.ndarray, ...]], statistic: Callable,
                      confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                      shared: tuple[np.ndarray, ...] = ()) -> Interval | None:
    """Interval of the seed-averaged `statistic(*shared, *seed_rows)`: each seed's rows a tuple of
    equal-length arrays, the same rows for every seed (arrays every seed shares, such as the true labels,
    go in `shared` once: the bootstrap then indexes them once). None when there are fewer than 2 rows."""
    shared = tuple(np.asarray(a) for a in shared)
    samples = [tuple(np.asarray(a) for a in s) for s in samples]
    arrays = [*shared, *(a for s in samples for a in s)]
    if not samples or not arrays or len({len(a) for a in arrays}) != 1 or len(arrays[0]) < 2:
        return None
    n_seeds, n_rows, width, lead = len(samples), len(arrays[0]), len(samples[0]), len(shared)
    per_seed = np.array([float(statistic(*shared, *s)) for s in samples])
    mean = float(per_seed.mean())

    def seed_mean(*data, axis=-1):  # the seed-averaged figure of every resample
        common = data[:lead]
        each = [statistic(*common, *data[lead + j * width:lead + (j + 1) * width]) for j in range(n_seeds)]
        return np.mean(each, axis=0)

    method = "BCa" if n_seeds == 1 else "percentile"  # several seeds: only the standard error is used
    res = _bootstrap(arrays, seed_mean, method, confidence, n_resamples)
    se_rows = float(res.standard_error)
    if n_seeds == 1:
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isnan(lo) or math.isnan(hi):  # BCa is undefined on a degenerate bootstrap (e.g. 100%)
            lo, hi = _percentile(res, confidence, mean)
        return Interval(mean, lo, hi, 1, n_rows, se_rows)
    var_seeds = float(per_seed.var(ddof=1)) / n_seeds
    half, se_total = _t_half_width(se_rows ** 2, n_rows - 1, var_seeds, n_seeds - 1, confidence)
    return Interval(mean, mean - half, mean + half, n_seeds, n_rows, se_total)


def _bootstrap(data, statistic, method, confidence, n_resamples):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DegenerateDataWarning on constant rows: handled by the caller
        return sps.bootstrap(tuple(data), statistic, paired=True, vectorized=True, n_resamples=n_resamples,
                             confidence_level=confidence, method=method,
                             rng=np.random.default_rng(RANDOM_SEED))


def _percentile(res, confidence: float, mean: float) -> tuple[float, float]:
    dist = np.asarray(res.bootstrap_distribution, dtype=float)
    a = (1 - confidence) / 2
    if dist.size == 0 or np.isnan(dist).all():
        return mean, mean
    return float(np.nanquantile(dist, a)), float(np.nanquantile(dist, 1 - a))


def _t_half_width(var_a: float, df_a: float, var_b: float, df_b: float,
                  confidence: float) -> tuple[float, float]:
    """t half-width for a standard error made of two variance parts (Welch-Satterthwaite df)."""
    total = var_a + var_b
    if total <= 0:
        return 0.0, 0.0
    denom = (var_a ** 2 / df_a if df_a > 0 else 0.0) + (var_b ** 2 / df_b if df_b > 0 else 0.0)
    df = total ** 2 / denom if denom > 0 else float("inf")
    se = math.sqrt(total)
    return float(sps.t.ppf(0.5 + confidence / 2, df) * se), se


# --- what a record's metric is, computed from its rows ---------------------------------------------------
PREDICTION_METRICS = ("accuracy", "f1", "val_accuracy", "ood_balanced_accuracy", "robustness_drop",
                      "val_gain_over_zero_shot", "gain_over_zero_shot")
# --task generate: a trial's exact match minus the untrained model's, per row of one split (paired rows)
_GAIN = {"val_gain_over_zero_shot": ("val_predictions", "val_labels", "zero_shot_val_correct"),
         "gain_over_zero_shot": ("test_predictions", "test_labels", "zero_shot_correct")}
_ROW_DIFFERENCES = ("robustness_drop", *_GAIN)  # metrics whose rows are one array of differences
_FIELDS = {  # metric -> (predictions field, labels field)
    "accuracy": ("test_predictions", "test_labels"),
    "f1": ("test_predictions", "test_labels"),
    "val_accuracy": ("val_predictions", "val_labels"),
    "ood_balanced_accuracy": ("ood_predictions", "ood_labels"),
}


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def rows_of(record: dict, metric: str) -> tuple[np.ndarray, ...] | None:
    """The per-row arrays a metric is computed from, or None when the record holds no predictions.

    robustness_drop: one array, per row (perturbed correctness averaged over the evaluated kinds) minus
    clean correctness, on the first `perturbation_rows` test rows."""
    if metric == "robustness_drop":
        return _robustness_rows(record)
    if metric in _GAIN:
        return _gain_rows(record, *_GAIN[metric])
    pred_field, label_field = _FIELDS[metric]
    preds, labels = _text(record.get(pred_field)), _text(record.get(label_field))
    if preds is None or labels is None:
        return None
    p, y = decode(preds), decode(labels)
    return (y, p) if len(p) == len(y) and len(y) else None


def _robustness_rows(record: dict) -> tuple[np.ndarray] | None:
    preds, labels = _text(record.get("test_predictions")), _text(record.get("test_labels"))
    n = _count(record.get("perturbation_rows"))
    if preds is None or labels is None or n is None:
        return None
    kinds = sorted(k[len("perturbed_"):-len("_predictions")] for k, v in record.items()
                   if k.startswith("perturbed_") and k.endswith("_predictions") and _text(v))
    if not kinds:
        return None
    y, clean = decode(labels)[:n], decode(preds)[:n]
    perturbed = [decode(record[f"perturbed_{k}_predictions"])[:n] for k in kinds]
    if len(y) != n or any(len(p) != n for p in perturbed):
        return None
    return (np.mean([p == y for p in perturbed], axis=0) - (clean == y).astype(float),)


def _gain_rows(record: dict, pred_field: str, label_field: str, floor_field: str) -> tuple[np.ndarray] | None:
    """Per row: the trial's correctness minus the zero-shot model's (the same rows, in the same order)."""
    preds, labels, floor = (_text(record.get(f)) for f in (pred_field, label_field, floor_field))
    if preds is None or labels is None or floor is None:
        return None
    p, y, z = decode(preds), decode(labels), decode(floor)
    if not len(y) or len(p) != len(y) or len(z) != len(y):
        return None
    return ((p == y).astype(float) - z.astype(float),)


def _count(value) -> int | None:
    """A positive whole number, also when a DataFrame turned it into a float (NaN -> None)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if math.isfinite(f) and f >= 1 and f == int(f) else None


def _compact(metric: str, samples: list[tuple[np.ndarray, ...]], task_classes: int | None = None):
    """(shared arrays, per-seed arrays, statistic) in the smallest form the bootstrap has to index: a 0/1
    correctness per row for accuracy, the labels once and int8 predictions for F1 and balanced accuracy."""
    if metric in ("accuracy", "val_accuracy"):
        return (), [((y == p).astype(np.int8),) for y, p in samples], mean_of_rows
    if metric in _ROW_DIFFERENCES:
        return (), [(s[0].astype(np.float32),) for s in samples], mean_of_rows
    classes = np.unique(np.concatenate([np.concatenate(s) for s in samples]))
    small = np.int8 if classes.max() < 127 else np.int64
    width = int(classes.max()) + 1
    if task_classes is not None:  # generated answers: "other" (= K) is a miss, never a class averaged over
        classes = np.arange(task_classes)
    statistic = make_macro_f1(classes, width) if metric == "f1" else make_balanced_accuracy(width)
    return (samples[0][0].astype(small),), [(p.astype(small),) for _, p in samples], statistic


def metric_interval(records: Sequence[dict], metric: str, confidence: float = CONFIDENCE) -> Interval | None:
    """Interval for one configuration's `metric` over its seeds (one record per seed), from their rows.
    None when any record lacks predictions or the seeds were evaluated on different rows."""
    samples = [rows_of(r, metric) for r in records]
    if not samples or any(s is None for s in samples):
        return None
    if metric not in _ROW_DIFFERENCES:
        labels = samples[0][0]
        if any(not np.array_equal(s[0], labels) for s in samples[1:]):
            return None
    elif any(len(s[0]) != len(samples[0][0]) for s in samples):
        return None
    # a record that stores its task's classes (a generate task scoring verbalised labels) may predict
    # "other" (= num_labels): macro-F1 is then over the task's classes only
    generated = _count(records[0].get("num_labels"))
    shared, per_seed, statistic = _compact(metric, samples, generated or None)
    iv = combined_interval(per_seed, statistic, confidence, shared=shared)
    degenerate = iv is not None and iv.n_seeds == 1 and iv.ci_low == iv.ci_high
    if degenerate and metric in ("accuracy", "val_accuracy"):
        # every row right (or wrong): no resample differs, yet 80 rows at 100% do not prove 100%
        correct = int(per_seed[0][0].sum())
        ci = sps.binomtest(correct, iv.n_rows).proportion_ci(confidence, method="wilson")
        iv = Interval(iv.mean, float(ci.low), float(ci.high), 1, iv.n_rows, iv.se)
    return iv


# --- the paired test against a baseline, and Holm ---------------------------------------------------------
@dataclass(frozen=True)
class RowTest:
    mean_difference: float  # method - baseline, accuracy as a fraction
    p_value: float
    n_seeds: int
    n_rows: int


def paired_row_test(method: dict[int, dict], baseline: dict[int, dict]) -> RowTest | None:
    """Per-row correctness difference (method - baseline) on the seeds both have. None when they share no
    seed, or a shared seed lacks predictions or was evaluated on other rows than its baseline."""
    seeds = sorted(set(method) & set(baseline))
    diffs = []
    for s in seeds:
        a, b = rows_of(method[s], "accuracy"), rows_of(baseline[s], "accuracy")
        if a is None or b is None or not np.array_equal(a[0], b[0]):
            return None
        diffs.append((a[1] == a[0]).astype(float) - (b[1] == b[0]).astype(float))
    if not diffs or len({len(d) for d in diffs}) != 1:
        return None
    d = np.mean(diffs, axis=0)
    n = len(d)
    mean = float(d.mean())
    if n < 2:
        return None
    var_rows = float(d.var(ddof=1)) / n
    var_seeds = float(np.var([x.mean() for x in diffs], ddof=1)) / len(diffs) if len(diffs) > 1 else 0.0
    if var_rows + var_seeds <= 0:
        return RowTest(mean, _constant_difference_p(d), len(diffs), n)
    df_denom = var_rows ** 2 / (n - 1) + (var_seeds ** 2 / (len(diffs) - 1) if len(diffs) > 1 else 0.0)
    df = (var_rows + var_seeds) ** 2 / df_denom
    p = float(2 * sps.t.sf(abs(mean) / math.sqrt(var_rows + var_seeds), df))
    return RowTest(mean, p, len(diffs), n)


def _constant_difference_p(d: np.ndarray) -> float:
    """Zero variance: identical predictions (all differences 0) are p = 1; a difference of the same sign on
    every row gets the exact sign test instead of an undefined t."""
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return 1.0
    return float(sps.binomtest(int((nonzero > 0).sum()), int(nonzero.size)).pvalue)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None stays None), in the input order."""
    idx = [i for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    order = sorted(idx, key=lambda i: p_values[i])
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p_values[i]))
        out[i] = running
    return out
