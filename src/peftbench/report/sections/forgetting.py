"""Forgetting: how much worse the trained model predicts ordinary text than the base did (decoders only)."""

from __future__ import annotations

import pandas as pd

from peftbench.report import plots
from peftbench.report.page import Page, esc, table_html
from peftbench.report.sections.decoder_figures import (
    FORGETTING_NOTE,
    cell,
    decoder_frame,
    interval_points,
    marked,
)
from peftbench.report.sections.study_facts import collapsed_methods


def forgetting_section(page: Page, records: pd.DataFrame, label: str, colors: dict) -> None:
    """A decoder classifier's one decoder section (a generate study shows forgetting under Generation)."""
    page.add(f"<h2>Forgetting <span class='muted'>({esc(label)})</span></h2>")
    agg = decoder_frame(records)
    page.add(f"<p class='muted'>{esc(FORGETTING_NOTE)}</p>")
    page.add('<div class="plots">' + forgetting_plot(page, agg, colors) + "</div>")
    page.add(_forgetting_table(agg, collapsed_methods(records)))


def forgetting_plot(page: Page, agg: pd.DataFrame, colors: dict) -> str:
    fig = plots.forgetting(interval_points(agg, "forgetting"), colors)
    return page.plot("forgetting", "Forgetting per method (nats per token; bars: 95% interval over seeds "
                     "where there are several)", fig)


def _forgetting_table(agg: pd.DataFrame, collapsed: set[str]) -> str:
    metrics = ["general_ce_before", "general_ce_after", "forgetting"]
    return table_html(["method", "general CE before", "after", "forgetting (nats)"],
                      [[marked(m, collapsed)] + [cell(row, x) for x in metrics] for m, row in agg.iterrows()])
