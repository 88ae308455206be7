"""The per-configuration table `export --summary` writes: the results table's figures, each with its 95%
interval and a column saying how that interval was computed, ready to copy into a paper or a spreadsheet.

It is the results table's own frame (`tables.summary_frame`, per study and setup as `peftbench results`
splits them), renamed, never recomputed: an interval here is the one the table shows. Values keep the
store's units (accuracy as a fraction, bytes, ms; the robustness drop as a fraction, not points).
"""

from __future__ import annotations

import math

import pandas as pd

from peftbench.report.tables import COLUMNS, SPREAD, STRUCTURAL, by_setup, summary_frame
from peftbench.stats.summary import drop_repeated_seeds, reportable

ROWS_OF = {"accuracy": "test", "f1": "test", "val_accuracy": "validation", "ood_balanced_accuracy": "OOD",
           "robustness_drop": "perturbed test", "val_gain_over_zero_shot": "validation",
           "gain_over_zero_shot": "test"}
NOTES = ["collapsed_n", "collapse_reasons", "timing_contended_n", "timing_notes"]
VS_FULL = {"diff_vs_baseline": "diff_vs_full", "p_vs_baseline": "p_vs_full", "p_holm_vs_baseline":
           "p_holm_vs_full", "significant_vs_baseline": "differs_from_full"}
_PARTS = ("mean", "std", "ci_low", "ci_high", "n", "interval")


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def ci_method(metric: str, kind, n) -> str:
    """How a figure's interval was computed, in words a reader of the table needs (the `_interval` kind
    aggregate() reports, and its seed count)."""
    seeds = 1 if _nan(n) else int(n)
    rows = f"{ROWS_OF[metric]} rows" if metric in ROWS_OF else "rows"
    if metric in STRUCTURAL:
        return "none: fixed by the method and model"
    if kind == "rows":
        return f"bootstrap over {rows} (1 seed: row noise only, no training randomness)"
    if kind == "rows+seeds":
        return f"bootstrap over {rows} and spread over seeds ({seeds} seeds)"
    if kind == "seeds":
        return f"t-interval over seeds ({seeds} seeds)"
    if metric in SPREAD:
        low, high = SPREAD[metric]
        return f"none with {seeds} seed{'s' if seeds != 1 else ''}; spread over repeats: {low}, {high}"
    if metric in ROWS_OF:
        return "none: 1 seed and no per-row predictions (an older record)"
    return f"none: {seeds} seed{'s' if seeds != 1 else ''}"


def _vs_full_test(kind, seeds) -> str | None:
    if kind == "rows":
        both = " and the seeds both have" if not _nan(seeds) and seeds > 1 else " (1 seed)"
        return f"paired over test rows{both}, Holm-adjusted"
    if kind == "seeds":
        return "paired t over seeds, Holm-adjusted"
    return None


def paper_table(agg: pd.DataFrame) -> pd.DataFrame:
    """One results-table frame (summary_frame) as the exported summary: identity columns first (whatever
    identifies a configuration there), then per figure `<m>`, `<m>_ci_low`, `<m>_ci_high`, `<m>_ci_method`,
    then the test against Full and the marks."""
    metrics = [m for m, _, _ in COLUMNS if f"{m}_mean" in agg and agg[f"{m}_mean"].notna().any()]
    spreads = [c for m in metrics for c in SPREAD.get(m, ()) if f"{c}_mean" in agg]
    derived = {f"{m}_{p}" for m in [*metrics, *spreads] for p in _PARTS} | \
        {c for c in agg.columns for p in _PARTS if c.endswith(f"_{p}") and f"{c[:-len(p) - 1]}_mean" in agg}
    known = set(NOTES) | set(VS_FULL) | {"test_vs_baseline", "seeds", "learning_rates"}
    identity = [c for c in agg.columns if c not in derived and c not in known]
    out = pd.DataFrame({c: agg[c] for c in identity})
    out["seeds"] = agg["seeds"]
    if "learning_rates" in agg:
        out["tuned_learning_rates"] = agg["learning_rates"]
    for m in metrics:
        out[m] = agg[f"{m}_mean"]
        # a count fixed by the method has no interval (over seeds it would read a zero-width one)
        out[f"{m}_ci_low"] = None if m in STRUCTURAL else agg[f"{m}_ci_low"]
        out[f"{m}_ci_high"] = None if m in STRUCTURAL else agg[f"{m}_ci_high"]
        out[f"{m}_ci_method"] = [None if _nan(v) else ci_method(m, k, n) for v, k, n in
                                 zip(agg[f"{m}_mean"], agg[f"{m}_interval"], agg[f"{m}_n"])]
        for c in SPREAD.get(m, ()):
            if f"{c}_mean" in agg:
                out[c] = agg[f"{c}_mean"]
    for old, new in VS_FULL.items():
        if old in agg:
            out[new] = agg[old]
    if "test_vs_baseline" in agg:
        out["vs_full_test"] = [_vs_full_test(k, s) for k, s in zip(agg["test_vs_baseline"], agg["seeds"])]
    for c in NOTES:
        if c in agg:
            out[c] = agg[c]
    return out.reset_index(drop=True)


def summary_table(records: pd.DataFrame) -> pd.DataFrame:
    """The exported summary of a store's records: the reportable records (chosen tuning candidates, a
    repeated seed once), one results table per study and setup, as `peftbench results` prints them."""
    records = reportable(records)
    if records.empty:
        return pd.DataFrame()
    records, _ = drop_repeated_seeds(records)
    tables = [paper_table(summary_frame(grp)) for _, _, grp in by_setup(records)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
