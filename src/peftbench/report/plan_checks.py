"""Predicted vs measured as the terminal shows it (`results`, and after `run` / `study`): one row per planned
trial with both figures and the error, a flag past the tolerance (analysis/plan_check.py)."""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from peftbench.analysis.plan_check import HEADERS, TOLERANCE_WHY, cells, plan_checks, summary_line


def plan_check_table(records: pd.DataFrame, title: str = "Plan vs measured") -> Table | None:
    """None when no trial of `records` was planned (a store from before plans)."""
    checks = plan_checks(records)
    if checks.empty:
        return None
    what = "CUDA peak allocated" if (checks["memory_measured_as"] == "peak_cuda_allocated_mb").all() else \
        "net peak RSS" if (checks["memory_measured_as"] == "peak_rss_net_mb").all() else "device memory"
    t = Table(title=f"{title}: training memory ({what}) and training time, error = (pred - meas) / meas",
              title_justify="left", caption=f"{summary_line(checks)}. {TOLERANCE_WHY}.",
              caption_justify="left")
    for h in HEADERS:
        t.add_column(h, justify="left" if h in ("method", "time from", "flag / note") else "right",
                     overflow="fold")
    for _, check in checks.iterrows():
        row = cells(check.to_dict())
        style = "bold red" if check["flags"] else None
        t.add_row(*row, style=style)
    return t
