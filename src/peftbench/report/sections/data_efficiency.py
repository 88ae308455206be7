"""Data efficiency: accuracy against training-set size, the smallest size's accuracy and the curve's area."""

from __future__ import annotations

import pandas as pd

from peftbench.analysis.curves import (
    DATA_EFFICIENCY_STUDY,
    accuracy_by_size,
    data_efficiency_summary,
    study_records,
)
from peftbench.analysis.recommend import data_advice
from peftbench.report import plots
from peftbench.report.page import Page, esc, num, table_html
from peftbench.report.sections.study_facts import metric_name


def data_efficiency_section(page: Page, records: pd.DataFrame, colors: dict) -> None:
    page.add("<h2>Data efficiency</h2>")
    rows = study_records(records, DATA_EFFICIENCY_STUDY)
    if rows.empty:
        page.not_run("The data-efficiency study was not run (peftbench study data-efficiency).")
        return
    curves = accuracy_by_size(rows)
    metric = metric_name(rows)
    caption = f"{metric.capitalize()} vs training-set size"
    fig = plots.data_efficiency(curves, colors, metric)
    page.add('<div class="plots">' + page.plot("data_efficiency", caption, fig) + "</div>")
    summary = data_efficiency_summary(rows)
    # the score reads the validation figures; the test ones are reported beside them
    page.add(table_html(["method", "smallest size", "validation accuracy there", "validation AUC (log size)",
                         "test accuracy there (reported)", "test AUC (reported)"],
                        [[str(m), str(int(r["smallest_size"])), num(r.get("val_accuracy_at_smallest_size")),
                          num(r.get("val_normalized_auc")), num(r["accuracy_at_smallest_size"]),
                          num(r["normalized_auc"])] for m, r in summary.iterrows()]))
    advice = data_advice(records)
    if advice:
        page.add(f"<p>{esc(advice)}</p>")
