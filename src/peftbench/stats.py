"""Statistics over seeds: mean, standard deviation, 95% t-interval, and paired tests against a baseline.

Comparisons with full fine-tuning pair trials by seed (same seed = same data order and head init), and
use a paired t-test over seeds; with a single seed no test is possible and none is claimed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float
    n: int
    ci_low: float
    ci_high: float

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def summarize(values, confidence: float = 0.95) -> Summary:
    arr = np.asarray([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))],
                     dtype=float)
    n = len(arr)
    if n == 0:
        return Summary(float("nan"), float("nan"), 0, float("nan"), float("nan"))
    mean = float(arr.mean())
    if n == 1:
        return Summary(mean, float("nan"), 1, float("nan"), float("nan"))
    std = float(arr.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n))
    return Summary(mean, std, n, mean - half, mean + half)


@dataclass(frozen=True)
class PairedTest:
    mean_difference: float  # method - baseline
    p_value: float
    n_pairs: int
    significant: bool


def paired_test(method_values: dict[int, float], baseline_values: dict[int, float],
                alpha: float = 0.05) -> PairedTest | None:
    """Paired t-test over the seeds both have. None when fewer than two pairs exist."""
    seeds = sorted(set(method_values) & set(baseline_values))
    if len(seeds) < 2:
        return None
    a = np.array([method_values[s] for s in seeds], dtype=float)
    b = np.array([baseline_values[s] for s in seeds], dtype=float)
    diff = a - b
    if np.allclose(diff, diff[0]):
        # zero variance: identical differences; the t statistic is undefined
        p = 1.0 if diff[0] == 0 else 0.0
    else:
        p = float(sps.ttest_rel(a, b).pvalue)
    return PairedTest(float(diff.mean()), p, len(seeds), p < alpha)


def aggregate(records: pd.DataFrame, metrics: list[str], by: list[str] | None = None,
              baseline_method: str | None = "Full", compare_metric: str = "accuracy") -> pd.DataFrame:
    """One row per configuration: <metric>_mean/_std/_ci_low/_ci_high/_n, plus a paired test vs baseline."""
    by = by or ["study", "method", "train_size"]
    rows = []
    for key, grp in records.groupby(by, sort=False, dropna=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for m in metrics:
            if m not in grp:
                continue
            s = summarize(grp[m].tolist())
            row.update({f"{m}_mean": s.mean, f"{m}_std": s.std, f"{m}_ci_low": s.ci_low,
                        f"{m}_ci_high": s.ci_high, f"{m}_n": s.n})
        row["seeds"] = grp["seed"].nunique()
        if baseline_method and compare_metric in grp:
            cond = records["method"] == baseline_method
            for col in by:
                if col != "method":
                    cond &= records[col] == row[col]
            base = records[cond]
            test = None
            if row["method"] != baseline_method and len(base):
                test = paired_test(dict(zip(grp["seed"], grp[compare_metric])),
                                   dict(zip(base["seed"], base[compare_metric])))
            row["diff_vs_baseline"] = test.mean_difference if test else None
            row["p_vs_baseline"] = test.p_value if test else None
            row["significant_vs_baseline"] = test.significant if test else None
        rows.append(row)
    return pd.DataFrame(rows)
