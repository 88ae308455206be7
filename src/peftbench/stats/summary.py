"""Statistics per configuration: means with 95% intervals, the paired test against Full, and which
records a table may show at all.

Figures computed from stored per-row predictions (accuracy, F1, validation accuracy, OOD balanced
accuracy, robustness drop) get their interval from the rows, also with one seed (see `intervals`);
other measured figures get a t-interval over seeds (none with one seed). "Differs from Full" is a
paired test over test rows and seeds, Holm-corrected across the methods of one (study, setup) table.
A record without predictions (an older store) falls back to the seeds-only interval and test, or to
none.

What counts: `reportable` drops pruned tuning candidates and keeps only the chosen candidate of a tuned
method (by validation accuracy, never test), shown as its own configuration `<method> (tuned)`, and
`drop_repeated_seeds` keeps a configuration's seed once. Groups are configurations (`config`, from
config/identity.py) wherever the frame carries them: two configurations are never seeds of one row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from peftbench.config.identity import TUNED_SUFFIX, config_key, label_configurations, tuned_configuration
from peftbench.stats.intervals import PREDICTION_METRICS, holm, metric_interval, paired_row_test


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


def numeric_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """A record column as floats (NaN where missing or not a number; all NaN when no record has it)."""
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


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
    """Paired t-test over the seeds both have (the fallback when records carry no per-row predictions).
    None when fewer than two pairs exist."""
    seeds = sorted(set(method_values) & set(baseline_values))
    if len(seeds) < 2:
        return None
    a = np.array([method_values[s] for s in seeds], dtype=float)
    b = np.array([baseline_values[s] for s in seeds], dtype=float)
    diff = a - b
    if np.allclose(diff, diff[0]):
        # zero variance: the t statistic is undefined. Identical results are p = 1; a constant non-zero
        # difference gets the exact sign test (3 seeds: p = 0.25), never a made-up p = 0.
        p = 1.0 if diff[0] == 0 else float(sps.binomtest(int((diff > 0).sum()), len(diff)).pvalue)
    else:
        p = float(sps.ttest_rel(a, b).pvalue)
    return PairedTest(float(diff.mean()), p, len(seeds), p < alpha)


PER_SEED_KEY = ["study", "setup", "config", "method", "tune_group", "train_size", "seed"]


def _present(records: pd.DataFrame, cols: list[str]) -> list[str]:
    return [c for c in cols if c in records]


def _started_order(records: pd.DataFrame) -> pd.DataFrame:
    """Rows in the order they were started (a stable sort: hand-built frames keep their order)."""
    if "started_at" not in records:
        return records
    return records.sort_values("started_at", kind="stable", na_position="last")


def reportable(records: pd.DataFrame) -> pd.DataFrame:
    """The records a table shows: pruned candidates dropped, and of each tuned method only the chosen
    candidate per (study, setup, tune_group, seed, train_size), i.e. the completed one with the best
    *validation* accuracy (ties: the one started first). The chosen row is its own configuration, shown as
    `<tune_group> (tuned)` (`method_name` = tune_group; the candidate's own name stays in `tuned_method`,
    its `learning_rate` as is; `config` becomes the tuned configuration's key, whichever rate each seed
    chose). A tuned and an untuned LoRA-r8 are two rows, never one. Records without a tune_group are
    returned untouched."""
    if records.empty:
        return records
    out = records
    if "status" in out:
        out = out[out["status"] != "pruned"]
    if "tune_group" not in out:
        return out.reset_index(drop=True)
    tuned_mask = out["tune_group"].map(lambda v: isinstance(v, str) and v != "")
    plain, tuned = out[~tuned_mask], out[tuned_mask]
    if tuned.empty:
        return plain.reset_index(drop=True)
    if "status" in tuned:
        tuned = tuned[tuned["status"].isna() | (tuned["status"] == "ok")]
    tuned = _started_order(tuned)
    val = pd.to_numeric(tuned["val_accuracy"], errors="coerce") if "val_accuracy" in tuned else \
        pd.Series(float("nan"), index=tuned.index)
    tuned = tuned.assign(_val=val.fillna(-math.inf), _order=range(len(tuned)))
    if "configuration" in tuned:  # the search's configuration: candidates of two searches never compete
        budgets = tuned["tune_budget"] if "tune_budget" in tuned else pd.Series(None, index=tuned.index)
        confs = [tuned_configuration(c, None if _missing(b) else b)
                 for c, b in zip(tuned["configuration"], budgets)]
        tuned = tuned.assign(configuration=confs, config=[config_key(c) for c in confs])
    keys = _present(tuned, ["study", "setup", "config", "tune_group", "seed", "train_size"])
    chosen = (tuned.sort_values(["_val", "_order"], ascending=[False, True], kind="stable")
              .groupby(keys, sort=False, dropna=False).head(1).sort_values("_order"))
    chosen = chosen.drop(columns=["_val", "_order"])
    chosen = chosen.assign(tuned_method=chosen["method"], method_name=chosen["tune_group"],
                           method=chosen["tune_group"].map(lambda g: f"{g}{TUNED_SUFFIX}"))
    if "configuration" in chosen:
        chosen = label_configurations(chosen, base="method")  # two tuned searches of one name: told apart
    return pd.concat([plain, chosen], ignore_index=True)


def drop_repeated_seeds(records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, dropped): a configuration's seed counts once. Two trials with the same (study, setup,
    method, tune group, train size, seed) but different trial ids (an older store; new runs refuse the
    second) are not two seeds: the one started first is kept, the other returned for a note."""
    if records.empty:
        return records, records.iloc[0:0]
    ordered = _started_order(records)
    key = _present(ordered, PER_SEED_KEY)
    dup = ordered.duplicated(subset=key, keep="first")
    return ordered[~dup].sort_index(), ordered[dup]


def _records_of(grp: pd.DataFrame) -> list[dict]:
    return [{k: v for k, v in r.items() if not _missing(v)} for r in grp.to_dict("records")]


def _missing(v) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v)) if not isinstance(v, (dict, list, str)) else False
    except (TypeError, ValueError):
        return False


def _metric_columns(grp: pd.DataFrame, recs: list[dict], metric: str) -> dict:
    values = pd.to_numeric(grp[metric], errors="coerce").tolist() if metric in grp else []
    s = summarize(values)
    iv = metric_interval(recs, metric) if metric in PREDICTION_METRICS else None
    if iv is not None:
        return {f"{metric}_mean": iv.mean, f"{metric}_std": s.std, f"{metric}_ci_low": iv.ci_low,
                f"{metric}_ci_high": iv.ci_high, f"{metric}_n": iv.n_seeds,
                f"{metric}_interval": "rows" if iv.n_seeds == 1 else "rows+seeds"}
    return {f"{metric}_mean": s.mean, f"{metric}_std": s.std, f"{metric}_ci_low": s.ci_low,
            f"{metric}_ci_high": s.ci_high, f"{metric}_n": s.n,
            f"{metric}_interval": "seeds" if s.n > 1 else None}


def _texts(grp: pd.DataFrame, col: str) -> str | None:
    if col not in grp:
        return None
    seen = list(dict.fromkeys(str(v) for v in grp[col] if isinstance(v, str) and v))
    return "; ".join(seen) or None


def _flag_count(grp: pd.DataFrame, col: str) -> int:
    return int(sum(v is True or v == 1 for v in grp[col] if not _missing(v))) if col in grp else 0


def _group_notes(grp: pd.DataFrame) -> dict:
    row = {"seeds": int(grp["seed"].nunique()) if "seed" in grp else len(grp),
           "method_name": next((str(v) for v in grp.get("method_name", grp["method"]) if isinstance(v, str)),
                               None) if "method" in grp else None,
           "collapsed_n": _flag_count(grp, "collapsed"), "collapse_reasons": _texts(grp, "collapse_reason"),
           "timing_contended_n": _flag_count(grp, "timing_contended"),
           "timing_notes": _texts(grp, "timing_note")}
    if "setup_label" in grp:
        row["setup_label"] = next((v for v in grp["setup_label"] if isinstance(v, str)), None)
    if "tuned_method" in grp and grp["tuned_method"].map(lambda v: isinstance(v, str)).any():
        # the chosen learning rate(s) over seeds; None = the family's default rate
        rates = [None if _missing(v) else float(v) for v in grp.get("learning_rate", [None] * len(grp))]
        row["learning_rates"] = sorted(set(rates), key=lambda r: -1.0 if r is None else r)
    return row


def aggregate(records: pd.DataFrame, metrics: list[str], by: list[str] | None = None,
              baseline_method: str | None = "Full", compare_metric: str = "accuracy",
              alpha: float = 0.05) -> pd.DataFrame:
    """One row per configuration (by default study, setup, config, method, tune group, train size; the
    columns a frame lacks are left out): `<metric>_mean/_std/_ci_low/_ci_high/_n/_interval` for each
    metric, where `_interval` says what the interval covers ("rows", "rows+seeds", "seeds" or None), plus `seeds`,
    `collapsed_n`, `collapse_reasons`, `timing_contended_n`, `timing_notes`, `setup_label`,
    `learning_rates` (tuned rows), and the test against the baseline: `diff_vs_baseline`, `p_vs_baseline`,
    `p_holm_vs_baseline` (Holm across the methods of each study and setup), `significant_vs_baseline`
    (Holm-adjusted p < alpha) and `test_vs_baseline` ("rows" or "seeds")."""
    records, _ = drop_repeated_seeds(records)
    by = by or _present(records, ["study", "setup", "config", "method", "tune_group", "train_size"])
    if records.empty:
        return pd.DataFrame(columns=by)
    groups = list(records.groupby(by, sort=False, dropna=False))
    rows = []
    for key, grp in groups:
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        recs = _records_of(grp)
        for m in metrics:
            if m in grp or m in PREDICTION_METRICS:
                row.update(_metric_columns(grp, recs, m))
        row.update(_group_notes(grp))
        row["_records"] = recs
        rows.append(row)
    if baseline_method and "method" in by:
        _compare_with_baseline(rows, by, baseline_method, compare_metric, alpha)
    for row in rows:
        row.pop("_records")
    return pd.DataFrame(rows)


def _values(by_seed: dict, metric: str) -> dict:
    return {s: r[metric] for s, r in by_seed.items() if r.get(metric) is not None}


def _same(a, b) -> bool:
    return (_missing(a) and _missing(b)) or a == b


def _name(row: dict) -> str:
    """The method's own name (a configuration label is the name plus what sets it apart)."""
    return row.get("method_name") or row["method"]


def _compare_with_baseline(rows: list[dict], by: list[str], baseline_method: str, metric: str,
                           alpha: float) -> None:
    others = [c for c in by if c not in ("method", "tune_group", "config")]
    for row in rows:
        row.update(diff_vs_baseline=None, p_vs_baseline=None, p_holm_vs_baseline=None,
                   significant_vs_baseline=None, test_vs_baseline=None)
        if _name(row) == baseline_method:
            continue
        bases = [b for b in rows if _name(b) == baseline_method and all(_same(b[c], row[c]) for c in others)]
        # a tuned method is compared with a tuned Full when there is one, an untuned with an untuned
        bases.sort(key=lambda b: _missing(b.get("tune_group")) != _missing(row.get("tune_group")))
        if not bases:
            continue
        method_by_seed = {r["seed"]: r for r in row["_records"] if "seed" in r}
        base_by_seed = {r["seed"]: r for r in bases[0]["_records"] if "seed" in r}
        test = paired_row_test(method_by_seed, base_by_seed) if metric == "accuracy" else None
        if test is not None:
            row.update(diff_vs_baseline=test.mean_difference, p_vs_baseline=test.p_value,
                       test_vs_baseline="rows")
            continue
        seeds_test = paired_test(_values(method_by_seed, metric), _values(base_by_seed, metric))
        if seeds_test is not None:
            row.update(diff_vs_baseline=seeds_test.mean_difference, p_vs_baseline=seeds_test.p_value,
                       test_vs_baseline="seeds")
    families: dict[tuple, list[dict]] = {}
    for row in rows:
        families.setdefault(tuple(str(row[c]) for c in others if c != "train_size"), []).append(row)
    for family in families.values():
        adjusted = holm([r["p_vs_baseline"] for r in family])
        for r, p in zip(family, adjusted):
            r["p_holm_vs_baseline"] = p
            r["significant_vs_baseline"] = None if p is None else bool(p < alpha)
