"""Generation (--task generate): exact match above the untrained model's floor, what training bought and
what it cost, decoder inference, sample generations."""

from __future__ import annotations

import math

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
from peftbench.report.sections.forgetting import forgetting_plot
from peftbench.report.sections.inference import inference_table
from peftbench.report.sections.samples import samples_html
from peftbench.report.sections.study_facts import collapsed_methods, measured


def generation_section(page: Page, records: pd.DataFrame, label: str, colors: dict) -> None:
    page.add(f"<h2>Generation <span class='muted'>({esc(label)})</span></h2>")
    agg = decoder_frame(records)
    collapsed = collapsed_methods(records)
    figs = []
    if measured(agg, "val_accuracy_mean") and measured(agg, "zero_shot_val_exact_match_mean"):
        floor = agg["zero_shot_val_exact_match_mean"].astype(float)
        page.add(f"<p>Zero-shot floor (the untrained model on the same validation rows): validation exact "
                 f"match {esc(_floor_text(floor))}.</p>")
        fig = plots.exact_match_vs_floor(interval_points(agg, "val_accuracy"), float(floor.mean()), colors)
        figs.append(page.plot("generation_exact_match", "Validation exact match (95% interval) above the "
                              "zero-shot floor: what training bought", fig))
    else:
        page.not_run("Validation exact match or the zero-shot floor was not measured: no floor plot.")
    if measured(agg, "forgetting_mean"):
        figs.append(forgetting_plot(page, agg, colors))
    page.add('<div class="plots">' + "".join(figs) + "</div>")
    page.add("<h3>What training bought, and what it cost</h3><p class='muted'>val EM gain: exact match minus "
             "the zero-shot floor's, its 95% interval paired over the same validation rows. "
             f"{esc(FORGETTING_NOTE)}</p>" + _bought_table(agg, collapsed))
    page.add("<h3>Decoder inference</h3>" + inference_table(records, agg, collapsed))
    page.add(samples_html(records))


def _floor_text(floor: pd.Series) -> str:
    """One setup has one floor; several values would mean trials scored different rows: say so."""
    low, high = floor.min(), floor.max()
    return f"{low:.3f}" if math.isclose(low, high) else f"{low:.3f} to {high:.3f} (differs across trials)"


def _bought_table(agg: pd.DataFrame, collapsed: set[str]) -> str:
    """Exact match over the floor (the gain's interval is paired over the same rows) beside forgetting."""
    metrics = ["val_accuracy", "zero_shot_val_exact_match", "val_gain_over_zero_shot", "general_ce_before",
               "general_ce_after", "forgetting"]
    header = ["method", "val EM", "zero-shot val EM", "val EM gain", "general CE before", "after",
              "forgetting (nats)"]
    return table_html(header, [[marked(m, collapsed)] + [cell(row, x) for x in metrics]
                               for m, row in agg.iterrows()])
