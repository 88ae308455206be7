"""The per-method figures of the decoder sections (Generation, Forgetting): one aggregate() over the
section's study, so each agrees with the Results table (val_accuracy is validation exact match for
--task generate)."""

from __future__ import annotations

import pandas as pd

from peftbench.analysis.scores import FORGETTING_ZERO_NATS
from peftbench.report.sections.study_facts import COLLAPSED_MARK
from peftbench.report.tables import COLUMNS
from peftbench.report.tables import format_cell as terminal_cell
from peftbench.stats.summary import aggregate, reportable

DECODER_METRICS = ["val_accuracy", "zero_shot_val_exact_match", "val_gain_over_zero_shot",
                   "general_ce_before", "general_ce_after", "forgetting",
                   "latency_p50_ms", "latency_p25_ms", "latency_p75_ms",
                   "decode_tokens_per_s_batch1", "decode_tokens_per_s_batched",
                   "merged_latency_p50_ms", "merged_decode_tokens_per_s_batch1",
                   "merged_decode_tokens_per_s_batched", "adapter_bytes"]
# cross-entropies to 4 places: a small adapter moves general text by 1e-3 nats or less
FORMATS = {m: f for m, _, f in COLUMNS} | {"general_ce_before": "{:.4f}", "general_ce_after": "{:.4f}",
                                          "forgetting": "{:+.4f}", "decode_tokens_per_s_batch1": "{:.0f}",
                                          "merged_decode_tokens_per_s_batch1": "{:.0f}",
                                          "merged_decode_tokens_per_s_batched": "{:.0f}"}
FORGETTING_NOTE = ("Forgetting: the cross-entropy per token of a fixed general-text sample after training "
                   f"minus before (nats; 0 = unchanged, +{FORGETTING_ZERO_NATS:.3f} = its perplexity "
                   "doubled, where the generalization score reaches 0).")


def decoder_frame(records: pd.DataFrame) -> pd.DataFrame:
    """One row per method of the section's study (collapsed methods kept: they are marked), indexed by
    method; the baseline comparison is the Results table's business."""
    metrics = [m for m in DECODER_METRICS if m in records]
    return aggregate(reportable(records), metrics, baseline_method=None).set_index("method", drop=False)


def cell(row: pd.Series, metric: str) -> str:
    return terminal_cell(row, metric, FORMATS[metric]) if f"{metric}_mean" in row else "-"


def interval_points(agg: pd.DataFrame, metric: str) -> pd.DataFrame:
    """value/low/high of one metric per method, as the section's plots take them."""
    return pd.DataFrame({"value": agg[f"{metric}_mean"], "low": agg[f"{metric}_ci_low"],
                         "high": agg[f"{metric}_ci_high"]}).astype(float).dropna(subset=["value"])


def marked(method: str, collapsed: set[str]) -> str:
    return method + (COLLAPSED_MARK if method in collapsed else "")
