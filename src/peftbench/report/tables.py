"""Result tables for people: one row per configuration of one setup, every accuracy with its 95% interval.

The legend says what the intervals hold: with one seed, row noise only (`interval_label`).

Accuracy, F1, validation and OOD balanced accuracy read `0.789 ± 0.028`; robustness is the drop in points
(`-1.2 ± 2.0 pts`); training memory is net of the process's baseline; latency shows its interquartile
range over repeats. A collapsed trial and a contended timing are marked, with their reasons under the table.
"""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table

from peftbench.data.truncation import truncation_note
from peftbench.stats.intervals import PREDICTION_METRICS
from peftbench.stats.summary import aggregate, reportable

COLUMNS = [  # (metric, header, format)
    ("trainable_params", "trainable", "{:,.0f}"),
    ("trainable_pct", "% params", "{:.3f}"),
    ("train_seconds", "train s", "{:.1f}"),
    ("peak_rss_net_mb", "train MB (net)", "{:.0f}"),
    ("flops_per_step", "GFLOP/step", "{:.1f}"),
    ("val_accuracy", "val acc", "{:.3f}"),
    ("accuracy", "test acc", "{:.3f}"),
    ("f1", "F1", "{:.3f}"),
    ("ood_balanced_accuracy", "OOD bal acc", "{:.3f}"),
    ("robustness_drop", "robust drop", "{:+.1f}"),
    ("latency_p50_ms", "p50 ms [IQR]", "{:.1f}"),
    ("merged_latency_p50_ms", "merged p50", "{:.1f}"),
    ("adapter_bytes", "size MB", "{:.2f}"),
    # decoders (--task generate, and forgetting for a decoder classifier): shown where measured
    ("train_tokens_per_s", "train tok/s", "{:.0f}"),
    ("zero_shot_val_exact_match", "0-shot val EM", "{:.3f}"),
    ("val_gain_over_zero_shot", "val EM gain", "{:+.1f}"),
    ("forgetting", "forgetting (nats)", "{:+.3f}"),
    ("decode_tokens_per_s_batched", "decode tok/s", "{:.0f}"),
]
SCALE = {"flops_per_step": 1e-9, "adapter_bytes": 1 / 2**20, "robustness_drop": 100.0,
         "val_gain_over_zero_shot": 100.0}
UNIT = {"robustness_drop": " pts", "val_gain_over_zero_shot": " pts"}
# Fixed by the method and model, not measured with noise: a spread over seeds would only read "± 0".
STRUCTURAL = {"trainable_params", "trainable_pct", "flops_per_step", "adapter_bytes", "zero_shot_val_exact_match"}
# --task generate scores exact match, and its latency is the time to the first generated token.
# The spread over repeats shown beside a latency (merged latency's spread is in export: the table is wide).
SPREAD = {"latency_p50_ms": ("latency_p25_ms", "latency_p75_ms")}


def interval_label(seeds) -> str:
    """What the intervals of a table hold, from its configurations' seed counts: with one seed only row
    noise (a bootstrap over the evaluated rows; a second training run would add its own randomness)."""
    counts = sorted({int(s) for s in seeds if not _nan(s)})
    if counts == [1] or not counts:
        return "95% CI (rows only, 1 seed)"
    if counts[0] == 1:
        return "95% CI (rows and seeds; rows only where 1 seed)"
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"95% CI (rows and seeds, {n} seeds)"


def interval_title(agg: pd.DataFrame) -> str:
    """The table's legend: what ± holds and what * tests."""
    label = interval_label(agg["seeds"] if "seeds" in agg else [])
    if label.endswith("(rows only, 1 seed)"):
        how = "bootstrap over the evaluated rows; training randomness is not in it"
        test = "rows"
    else:
        how = "bootstrap over the evaluated rows with the spread over seeds"
        test = "rows and seeds"
    return f"mean ± {label}: {how}; * = differs from Full (paired test over {test}, Holm-adjusted p < 0.05)"


def task_headers(records: pd.DataFrame) -> dict[str, str]:
    """Column headers the records' task gives its roles (a generate study's accuracy is "test EM")."""
    from peftbench.tasks import task_named, task_names

    headers: dict[str, str] = {}
    for name in (records["task"].dropna().unique() if "task" in records else []):
        if name in task_names():
            headers.update(task_named(name).headers)
    return headers


def summary_frame(records: pd.DataFrame) -> pd.DataFrame:
    """aggregate() over the reportable records (chosen tuning candidates only), every shown metric."""
    records = _with_net_memory(reportable(records))
    spreads = [c for pair in SPREAD.values() for c in pair]
    metrics = [c for c, _, _ in COLUMNS if c in records or c in PREDICTION_METRICS] + \
              [c for c in spreads if c in records]
    return aggregate(records, metrics)


def _with_net_memory(records: pd.DataFrame) -> pd.DataFrame:
    """Older records kept the raw peak and the baseline but not their difference: derive it for them."""
    if not {"peak_rss_mb", "baseline_rss_mb"} <= set(records.columns):
        return records
    derived = pd.to_numeric(records["peak_rss_mb"], errors="coerce") - \
        pd.to_numeric(records["baseline_rss_mb"], errors="coerce")
    if "peak_rss_net_mb" in records:
        derived = pd.to_numeric(records["peak_rss_net_mb"], errors="coerce").fillna(derived)
    return records.assign(peak_rss_net_mb=derived)


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def format_cell(row: pd.Series, metric: str, fmt: str, with_ci: bool = True) -> str:
    mean = row.get(f"{metric}_mean")
    if _nan(mean):
        return "-"
    k = SCALE.get(metric, 1.0)
    text = fmt.format(mean * k)
    if metric in SPREAD:
        lo, hi = (row.get(f"{c}_mean") for c in SPREAD[metric])
        if not _nan(lo) and not _nan(hi):
            text += f" [{fmt.format(lo * k)}-{fmt.format(hi * k)}]"
        return text
    lo, hi = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    with_ci = with_ci and metric not in STRUCTURAL
    if with_ci and not _nan(lo) and not _nan(hi):
        text += " ± " + fmt.format((hi - lo) / 2 * k).lstrip("+")
    elif with_ci and metric in PREDICTION_METRICS:
        text += " (no CI)"  # an older record without per-row predictions
    return text + UNIT.get(metric, "")


def method_cell(row: pd.Series) -> str:
    """The method's name, its tuned learning rate, and the marks a reader must not miss."""
    name = str(row["method"])
    rates = row.get("learning_rates")
    if isinstance(rates, list) and rates:
        tuned = " (tuned, lr " + "/".join("default" if r is None else f"{r:.0e}" for r in rates) + ")"
        name = name.replace(" (tuned)", tuned, 1) if " (tuned)" in name else name + tuned
    if row.get("significant_vs_baseline") is True:
        name += " *"
    if row.get("collapsed_n", 0):
        seeds = int(row.get("seeds", 1) or 1)
        name += " ⚠collapsed" + (f" ({int(row['collapsed_n'])}/{seeds})" if seeds > 1 else "")
    return name


def results_table(records: pd.DataFrame, title: str = "peftbench results") -> Table:
    """One table for records of one setup (the caller splits them: see `by_setup`)."""
    agg = summary_frame(records)
    notes = "\n".join(n for n in (_notes(agg), _truncation_note(records)) if n)
    table = Table(title=f"{title}\n({interval_title(agg)})", caption=notes or None, caption_justify="left")
    for col in ("method", "train n", "seeds"):
        table.add_column(col, no_wrap=True)
    headers = task_headers(records)
    shown = [(m, headers.get(m, h), f) for m, h, f in COLUMNS
             if f"{m}_mean" in agg and agg[f"{m}_mean"].notna().any()]
    for _, header, _ in shown:
        table.add_column(header, justify="right")
    for _, row in agg.iterrows():
        cells = [method_cell(row), str(row["train_size"]), str(row["seeds"])]
        for m, _, f in shown:
            text = format_cell(row, m, f)
            if m == "train_seconds" and row.get("timing_contended_n", 0) and text != "-":
                text += " ⚠"
            cells.append(text)
        table.add_row(*cells)
    return table


def _notes(agg: pd.DataFrame) -> str:
    """The reasons behind the marks, one line each."""
    lines = []
    for _, row in agg.iterrows():
        if row.get("collapsed_n", 0):
            lines.append(f"⚠collapsed {row['method']}: {row.get('collapse_reasons') or 'no reason recorded'}")
    for _, row in agg.iterrows():
        if row.get("timing_contended_n", 0):
            seeds = int(row.get("seeds", 1) or 1)
            count = f" ({int(row['timing_contended_n'])}/{seeds} seeds)" if seeds > 1 else ""
            first = str(row.get("timing_notes") or "").split("; other work")[0]
            lines.append(f"⚠ train s of {row['method']} taken on a loaded machine{count}"
                         + (f": {first}" if first else ""))
    if any(row.get(f"{m}_interval") is None and not _nan(row.get(f"{m}_mean"))
           for _, row in agg.iterrows() for m in PREDICTION_METRICS):
        lines.append("(no CI): the record holds no per-row predictions (an older store) and one seed")
    return "\n".join(lines)


def _truncation_note(records: pd.DataFrame) -> str | None:
    """Splits with more than 1% of their rows cut at max_length (each split as cut most among the records:
    trials of one setup may come from runs that tokenized different training pools)."""
    worst: dict[str, dict] = {}
    for value in records.get("truncation", []):
        for split, c in (value.items() if isinstance(value, dict) else ()):
            if isinstance(c, dict) and c.get("rows"):
                share = c.get("rows_cut", 0) / c["rows"]
                if split not in worst or share > worst[split]["rows_cut"] / worst[split]["rows"]:
                    worst[split] = {"rows_cut": 0, **c}
    return truncation_note(worst)


def by_setup(records: pd.DataFrame):
    """(study, setup label, records) for each study and setup in the store, never mixed."""
    keys = [c for c in ("study", "setup") if c in records]
    for key, grp in records.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        label = next((v for v in grp.get("setup_label", []) if isinstance(v, str)), None)
        yield str(key[0]), label, grp


def data_efficiency_table(records: pd.DataFrame) -> Table | None:
    """Per method: accuracy at the smallest size and the normalised AUC (None when the study was not run)."""
    from peftbench.analysis.curves import DATA_EFFICIENCY_STUDY, data_efficiency_summary, study_records

    summary = data_efficiency_summary(study_records(records, DATA_EFFICIENCY_STUDY))
    if summary.empty:
        return None
    table = Table(title="data efficiency (sizes every method has; AUC = mean accuracy over log size; the "
                        "score and advice read validation, test is reported)")
    for col in ("method", "sizes", "val acc at smallest", "val AUC", "test acc at smallest", "test AUC"):
        table.add_column(col, justify="left" if col == "method" else "right")

    def cell(value) -> str:
        return "-" if value is None or math.isnan(value) else f"{value:.3f}"

    for method, row in summary.iterrows():
        sizes = f"{int(row['smallest_size'])}-{int(row['largest_size'])} ({int(row['sizes'])})"
        table.add_row(str(method), sizes, cell(row.get("val_accuracy_at_smallest_size")),
                      cell(row.get("val_normalized_auc")), cell(row["accuracy_at_smallest_size"]),
                      cell(row["normalized_auc"]))
    return table
