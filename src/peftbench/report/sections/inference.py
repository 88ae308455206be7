"""Decoder inference: time to first token, decode throughput, the merged model, and whether merging
changed what the model writes."""

from __future__ import annotations

import pandas as pd

from peftbench.report.page import table_html
from peftbench.report.sections.decoder_figures import cell, marked


def inference_table(records: pd.DataFrame, agg: pd.DataFrame, collapsed: set[str]) -> str:
    batch = _batch_size(records)
    metrics = ["latency_p50_ms", "decode_tokens_per_s_batch1", "decode_tokens_per_s_batched",
               "merged_latency_p50_ms", "merged_decode_tokens_per_s_batch1",
               "merged_decode_tokens_per_s_batched"]
    header = ["method", "TTFT p50 ms [IQR]", "decode tok/s batch 1", f"decode tok/s batch {batch}",
              "merged TTFT p50 ms", "merged tok/s batch 1", f"merged tok/s batch {batch}",
              "merged greedy outputs", "adapter MB"]
    rows = [[marked(m, collapsed)] + [cell(row, x) for x in metrics]
            + [merge_check(records[records["method"] == m]), cell(row, "adapter_bytes")]
            for m, row in agg.iterrows()]
    return ("<p class='muted'>TTFT: time to the first generated token at batch 1, median over repeats "
            "[interquartile range]. Merged: the adapter folded into the base weights.</p>"
            + table_html(header, rows))


def _batch_size(records: pd.DataFrame) -> str:
    sizes = pd.to_numeric(records.get("decode_batch_size", pd.Series(dtype=float)), errors="coerce").dropna()
    return "/".join(str(int(s)) for s in sorted(sizes.unique())) or "N"


def merge_check(records: pd.DataFrame) -> str:
    """Whether merging changed what the model writes, over every seed's probe rows."""
    if "can_merge" not in records:
        return "-"
    if not records["can_merge"].fillna(False).astype(bool).any():
        return "cannot merge"
    errors = [e for e in records.get("merge_error", pd.Series(dtype=object)).dropna() if e]
    checked = records.dropna(subset=["merge_same_greedy"]) if "merge_same_greedy" in records else records[:0]
    if checked.empty:
        return f"merge failed: {errors[0]}" if errors else "-"
    differing = int(pd.to_numeric(checked["merge_rows_differing"], errors="coerce").fillna(0).sum())
    probed = int(pd.to_numeric(checked["merge_probe_rows"], errors="coerce").fillna(0).sum())
    text = f"identical ({probed} rows)" if differing == 0 else f"differ on {differing}/{probed} rows"
    return text + (f"; merge failed in {len(errors)} trial(s)" if errors else "")
