"""What the two sweep studies say: data-efficiency curves and the smallest sufficient LoRA rank.

Every choice here (the data-efficiency score, the winner per size, the smallest sufficient rank) is made
on validation accuracy; the test split is only reported. Accuracy is first averaged over seeds per (method,
size) or per rank; the rank choice then uses the seeds themselves when there are several, so noise is not
mistaken for a real difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from peftbench.stats.predictions import decode
from peftbench.stats.summary import summarize

DATA_EFFICIENCY_STUDY = "data-efficiency"
RANK_SWEEP_STUDY = "rank-sweep"


def study_records(records: pd.DataFrame, study: str) -> pd.DataFrame:
    """Rows of one study with a measured accuracy (empty when the study was not run)."""
    if records.empty or "study" not in records or "accuracy" not in records:
        return records.iloc[0:0]
    rows = records[records["study"] == study]
    return rows[pd.to_numeric(rows["accuracy"], errors="coerce").notna()]


def _val(frame: pd.DataFrame) -> pd.Series:
    if "val_accuracy" not in frame:
        return pd.Series(float("nan"), index=frame.index)
    return pd.to_numeric(frame["val_accuracy"], errors="coerce").astype(float)


def row_bootstrap_half_width(record: dict, resamples: int = 500, seed: int = 0) -> float:
    """Half width of the 95% percentile bootstrap interval of one trial's test accuracy over its rows
    (NaN without stored predictions): the interval a single seed can still have."""
    pred, lab = (decode(v) if isinstance(v, str) else np.empty(0) for v in
                 (record.get("test_predictions"), record.get("test_labels")))
    if not pred.size or pred.size != lab.size:
        return float("nan")
    idx = np.random.default_rng(seed).integers(0, pred.size, size=(resamples, pred.size))
    low, high = np.quantile((pred[idx] == lab[idx]).mean(axis=1), [0.025, 0.975])
    return float(high - low) / 2


def accuracy_by_size(records: pd.DataFrame) -> pd.DataFrame:
    """Mean test accuracy and mean validation accuracy per method and training-set size, with a 95% half
    width: the t-interval over seeds, or for one seed a bootstrap over its test rows when stored."""
    rows = []
    groups = records.groupby(["method", "train_size"], sort=False) if len(records) else []
    for (method, size), grp in groups:
        acc = summarize(pd.to_numeric(grp["accuracy"], errors="coerce").tolist())
        half = acc.half_width
        if acc.n == 1 and "test_predictions" in grp:
            half = row_bootstrap_half_width(grp.iloc[0].to_dict())
        rows.append({"method": method, "train_size": int(size), "accuracy": acc.mean,
                     "ci_half_width": half, "seeds": acc.n, "val_accuracy": float(_val(grp).mean())})
    out = pd.DataFrame(rows, columns=["method", "train_size", "accuracy", "ci_half_width", "seeds",
                                      "val_accuracy"])
    return out.sort_values(["method", "train_size"], kind="stable").reset_index(drop=True)


def normalized_auc(sizes: list[float], accuracies: list[float]) -> float:
    """Trapezoid area under accuracy vs ln(size), divided by the ln-size range: a mean accuracy over
    the range in which each doubling of data counts equally. NaN with fewer than two sizes."""
    if len(sizes) < 2:
        return float("nan")
    order = np.argsort(sizes)
    x = np.log(np.asarray(sizes, dtype=float)[order])
    y = np.asarray(accuracies, dtype=float)[order]
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
    return area / float(x[-1] - x[0])


def matched_curves(summary: pd.DataFrame, curve_rows: pd.DataFrame, ranked: pd.DataFrame) -> pd.DataFrame:
    """`data_efficiency_summary` re-indexed by the ranked study's candidates: each takes the curve of the
    configuration with the same method part (name, options, learning rates, tuned or not; not the study's
    own sizes or epochs), so a tuned LoRA-r8 never takes an untuned one's curve. Frames without
    configurations (hand-built) match by name."""
    if "configuration" not in curve_rows or "configuration" not in ranked or summary.empty:
        return summary
    from peftbench.config.identity import method_key

    def keys(frame: pd.DataFrame) -> dict[str, str]:
        return {str(m): method_key(c) for m, c in zip(frame["method"], frame["configuration"])
                if isinstance(c, dict)}

    by_key = {k: label for label, k in keys(curve_rows).items() if label in summary.index}
    picked = {label: by_key[k] for label, k in keys(ranked).items() if k in by_key}
    out = summary.reindex(list(picked.values()))
    out.index = pd.Index(list(picked), name=summary.index.name)
    return out


def data_efficiency_summary(records: pd.DataFrame) -> pd.DataFrame:
    """Per method: accuracy at the smallest size and normalised AUC, over the sizes every method has.

    `val_accuracy_at_smallest_size` and `val_normalized_auc` read validation accuracy: the data-efficiency
    score reads them. `accuracy_at_smallest_size` and `normalized_auc` read the study's test rows (its fixed
    eval_size set): reported only, never scored. Using the common sizes keeps methods comparable when one
    method's trial at some size failed."""
    curves = accuracy_by_size(records)
    cols = ["val_accuracy_at_smallest_size", "val_normalized_auc", "accuracy_at_smallest_size",
            "normalized_auc", "smallest_size", "largest_size", "sizes"]
    if curves.empty:
        return pd.DataFrame(columns=cols).rename_axis("method")
    per_method = [set(g["train_size"]) for _, g in curves.groupby("method", sort=False)]
    common = sorted(set.intersection(*per_method))
    rows = {}
    for method, grp in curves.groupby("method", sort=False):
        grp = grp[grp["train_size"].isin(common)]
        if grp.empty:
            continue
        sizes = grp["train_size"].tolist()
        rows[method] = {"val_accuracy_at_smallest_size": float(grp["val_accuracy"].iloc[0]),
                        "val_normalized_auc": normalized_auc(sizes, grp["val_accuracy"].tolist()),
                        "accuracy_at_smallest_size": float(grp["accuracy"].iloc[0]),
                        "normalized_auc": normalized_auc(sizes, grp["accuracy"].tolist()),
                        "smallest_size": int(grp["train_size"].iloc[0]),
                        "largest_size": int(grp["train_size"].iloc[-1]), "sizes": len(grp)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols).rename_axis("method")


def best_by_size(records: pd.DataFrame) -> pd.DataFrame:
    """The method with the best validation accuracy at each training-set size (sizes without validation
    figures are skipped: the test split never picks); `method` names every method tied for best
    ("A = B"), so a tie is never reported as a win. `accuracy` is the winner's test accuracy, reported."""
    curves = accuracy_by_size(records).dropna(subset=["val_accuracy"])
    rows = []
    for size, grp in curves.groupby("train_size", sort=True):
        best = grp["val_accuracy"].max()
        won = grp[(grp["val_accuracy"] - best).abs() <= 1e-12].sort_values("method")
        rows.append({"train_size": int(size), "method": " = ".join(won["method"].astype(str)),
                     "val_accuracy": float(best), "accuracy": float(won["accuracy"].mean()),
                     "tied": len(won) > 1})
    return pd.DataFrame(rows, columns=["train_size", "method", "val_accuracy", "accuracy", "tied"])


def rank_curve(records: pd.DataFrame) -> pd.DataFrame:
    """Per LoRA rank: mean test accuracy, mean validation accuracy, each seed's validation accuracy
    (what the rank choice reads), and the mean trainable parameters and %."""
    cols = ["rank", "accuracy", "val_accuracy", "seeds", "trainable_params", "trainable_pct", "by_seed"]
    if "lora_r" not in records:
        return pd.DataFrame(columns=cols)
    ranked = records.assign(lora_r=pd.to_numeric(records["lora_r"], errors="coerce"))
    ranked = ranked.dropna(subset=["lora_r"])
    rows = []
    for rank, grp in ranked.groupby("lora_r"):
        accs = pd.to_numeric(grp["accuracy"], errors="coerce").astype(float)
        vals = _val(grp)
        by_seed = {int(s): float(a) for s, a in zip(grp["seed"], vals) if not np.isnan(a)}
        rows.append({"rank": int(rank), "accuracy": float(accs.mean()),
                     "val_accuracy": float(np.mean(list(by_seed.values()))) if by_seed else float("nan"),
                     "seeds": len(by_seed), "trainable_params": _mean(grp, "trainable_params"),
                     "trainable_pct": _mean(grp, "trainable_pct"), "by_seed": by_seed})
    return pd.DataFrame(rows, columns=cols).sort_values("rank").reset_index(drop=True)


def _mean(frame: pd.DataFrame, column: str) -> float:
    return float(pd.to_numeric(frame[column], errors="coerce").mean()) if column in frame else float("nan")


@dataclass(frozen=True)
class RankChoice:
    """The smallest LoRA rank that is as good as the best one on validation, and how that was decided.
    `accuracy` / `best_accuracy` are test accuracies, reported; the choice reads only `val_*`."""

    rank: int
    accuracy: float
    trainable_params: float
    best_rank: int
    best_accuracy: float
    best_trainable_params: float
    criterion: str  # a sentence: "within 0.01 of the best" or the test and its p-value
    curve: pd.DataFrame
    val_accuracy: float = float("nan")
    best_val_accuracy: float = float("nan")


def one_sided_worse_p(candidate: dict[int, float], best: dict[int, float]) -> tuple[float, str]:
    """p-value for "candidate is less accurate than best": paired by seed when they share at least two
    seeds, else Welch's t-test. Zero-variance samples are decided by their means (p is 0 or 1)."""
    shared = sorted(set(candidate) & set(best))
    if len(shared) >= 2:
        diff = np.array([candidate[s] - best[s] for s in shared])
        if np.allclose(diff, diff[0]):
            return (0.0 if diff[0] < 0 else 1.0), "paired"
        return float(sps.ttest_rel([candidate[s] for s in shared], [best[s] for s in shared],
                                   alternative="less").pvalue), "paired"
    a, b = np.array(list(candidate.values())), np.array(list(best.values()))
    if a.std() == 0 and b.std() == 0:
        return (0.0 if a.mean() < b.mean() else 1.0), "Welch"
    return float(sps.ttest_ind(a, b, equal_var=False, alternative="less").pvalue), "Welch"


def smallest_sufficient_rank(records: pd.DataFrame, tolerance: float = 0.01,
                             alpha: float = 0.05) -> RankChoice | None:
    """Smallest rank whose validation accuracy is not worse than the best rank's (on validation).

    With several seeds on both ranks: not significantly worse by a one-sided test at `alpha`.
    With one seed: mean validation accuracy within `tolerance` of the best. None when no rank has a
    validation figure: the test split never chooses."""
    curve = rank_curve(records)
    if curve.empty or curve["val_accuracy"].isna().all():
        return None
    curve = curve.dropna(subset=["val_accuracy"]).reset_index(drop=True)
    best = curve.loc[curve["val_accuracy"].idxmax()]
    chosen, why = best, "it is the most accurate rank on validation"
    for _, row in curve[curve["rank"] < best["rank"]].iterrows():
        if row["seeds"] > 1 and best["seeds"] > 1:
            p, kind = one_sided_worse_p(row["by_seed"], best["by_seed"])
            ok = p >= alpha
            reason = (f"not significantly worse than the best on validation (one-sided {kind} t-test "
                      f"p={p:.3g})")
        else:
            ok = row["val_accuracy"] >= best["val_accuracy"] - tolerance - 1e-12  # inclusive despite rounding
            reason = f"within {tolerance:g} of the best on validation"
        if ok:
            chosen, why = row, reason
            break
    return RankChoice(int(chosen["rank"]), float(chosen["accuracy"]), float(chosen["trainable_params"]),
                      int(best["rank"]), float(best["accuracy"]), float(best["trainable_params"]), why, curve,
                      float(chosen["val_accuracy"]), float(best["val_accuracy"]))
