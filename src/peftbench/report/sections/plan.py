"""The plan against the measurement: what `peftbench plan` predicted for each trial before it ran, beside
what the trial measured, with the error and a flag past the tolerance (analysis/plan_check.py)."""

from __future__ import annotations

import pandas as pd

from peftbench.analysis.plan_check import HEADERS, TOLERANCE_WHY, cells, plan_checks, summary_line
from peftbench.report.page import Page, esc, table_html


def plan_section(page: Page, records: pd.DataFrame) -> None:
    checks = plan_checks(records)
    if checks.empty:
        return  # a store from before studies were planned: nothing to compare
    page.add("<h2>Plan vs measured</h2>")
    page.add(f"<p class='muted'>Training memory and training time as the plan predicted them before each "
             f"trial ran, beside what the trial measured; error = (predicted - measured) / measured. "
             f"{esc(summary_line(checks))}. {esc(TOLERANCE_WHY)}.</p>")
    flagged = checks[checks["flags"].map(bool)]
    if len(flagged):
        named = "; ".join(f"{r['method']} seed {r['seed']} ({', '.join(r['flags'])})"
                          for _, r in flagged.iterrows())
        page.add(f"<p class='note'>Over tolerance: {esc(named)}</p>")
    page.add(table_html(HEADERS, [cells(c.to_dict()) for _, c in checks.iterrows()]))
