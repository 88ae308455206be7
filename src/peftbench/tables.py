"""Result tables for people: one row per configuration, `mean ± CI` when there are several seeds."""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table

from .stats import aggregate

COLUMNS = [  # (metric, header, format)
    ("trainable_params", "trainable", "{:,.0f}"),
    ("trainable_pct", "% params", "{:.3f}"),
    ("train_seconds", "train s", "{:.1f}"),
    ("train_samples_per_s", "samples/s", "{:.1f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("flops_per_step", "GFLOP/step", "{:.1f}"),
    ("accuracy", "test acc", "{:.3f}"),
    ("f1", "F1", "{:.3f}"),
    ("ood_accuracy", "OOD acc", "{:.3f}"),
    ("robustness", "robust", "{:.3f}"),
    ("latency_p50_ms", "p50 ms", "{:.1f}"),
    ("merged_latency_p50_ms", "merged p50", "{:.1f}"),
    ("adapter_bytes", "size MB", "{:.2f}"),
]
SCALE = {"flops_per_step": 1e-9, "adapter_bytes": 1 / 2**20}


def summary_frame(records: pd.DataFrame) -> pd.DataFrame:
    metrics = [c for c, _, _ in COLUMNS if c in records]
    return aggregate(records, metrics)


def _fmt(row: pd.Series, metric: str, fmt: str, with_ci: bool) -> str:
    mean = row.get(f"{metric}_mean")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    k = SCALE.get(metric, 1.0)
    text = fmt.format(mean * k)
    lo, hi = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if with_ci and lo is not None and not math.isnan(lo):
        text += " ± " + fmt.format((hi - lo) / 2 * k)
    return text


def results_table(records: pd.DataFrame, title: str = "peftbench results") -> Table:
    agg = summary_frame(records)
    several = bool((agg["seeds"] > 1).any()) if len(agg) else False
    table = Table(title=title + (" (mean ± 95% CI over seeds; * = differs from Full, paired t-test p<0.05)"
                                 if several else ""))
    for col in ("method", "train n", "seeds"):
        table.add_column(col, no_wrap=True)
    shown = [(m, h, f) for m, h, f in COLUMNS if f"{m}_mean" in agg]
    for _, header, _ in shown:
        table.add_column(header, justify="right")
    for _, row in agg.iterrows():
        name = str(row["method"])
        if several and row.get("significant_vs_baseline"):
            name += " *"
        cells = [name, str(row["train_size"]), str(row["seeds"])]
        cells += [_fmt(row, m, f, several) for m, _, f in shown]
        table.add_row(*cells)
    return table


def data_efficiency_table(records: pd.DataFrame) -> Table | None:
    """Per method: accuracy at the smallest size and the normalised AUC (None when the study was not run)."""
    from .analysis.curves import DATA_EFFICIENCY_STUDY, data_efficiency_summary, study_records

    summary = data_efficiency_summary(study_records(records, DATA_EFFICIENCY_STUDY))
    if summary.empty:
        return None
    table = Table(title="data efficiency (sizes every method has; AUC = mean accuracy over log size)")
    for col in ("method", "sizes", "acc at smallest", "normalised AUC"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for method, row in summary.iterrows():
        sizes = f"{int(row['smallest_size'])}-{int(row['largest_size'])} ({int(row['sizes'])})"
        table.add_row(str(method), sizes, f"{row['accuracy_at_smallest_size']:.3f}",
                      "-" if math.isnan(row["normalized_auc"]) else f"{row['normalized_auc']:.3f}")
    return table
