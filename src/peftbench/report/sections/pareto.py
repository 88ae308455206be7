"""Pareto front: accuracy against trainable parameters, and how often each method is on the front."""

from __future__ import annotations

import pandas as pd

from peftbench.analysis.confidence import RESAMPLES, front_probability
from peftbench.analysis.pareto import Objective, pareto_table
from peftbench.analysis.recommend import Prepared
from peftbench.report import plots
from peftbench.report.page import Page, esc, num, table_html
from peftbench.report.sections.study_facts import measured


def pareto_section(page: Page, means: pd.DataFrame, colors: dict, prep: Prepared | None = None,
                   metric: str = "accuracy") -> None:
    page.add(f"<h2>Pareto front: validation {metric} vs trainable parameters</h2>")
    if not (measured(means, "val_accuracy") and measured(means, "trainable_params")):
        page.not_run("Validation accuracy or trainable parameters were not measured: no Pareto front.")
        return
    # the front is a choice: it reads validation; the test figure is shown beside it, as reported
    objectives = [Objective("val_accuracy", "max", asked="accuracy"), Objective("trainable_params", "min")]
    table = pareto_table(means, objectives)
    page.add('<div class="plots">' + page.plot("pareto", "Methods no other method beats on both",
                                                plots.pareto(table, "trainable_params", "val_accuracy", colors,
                                                             y_label=f"validation {metric}"))
             + "</div>")
    page.add(f"<p>On the front: {esc(', '.join(map(str, table.index[table['on_front']])))}</p>")
    resampled = prep.resampled if prep is not None else None
    if resampled is not None:
        p_front = front_probability(table, objectives, resampled)
        test = means["accuracy"] if "accuracy" in means else pd.Series(dtype=float)
        rows = [[str(m), num(table.loc[m, "val_accuracy"]), num(test.get(m, float("nan"))),
                 f"{table.loc[m, 'trainable_params']:,.0f}", "yes" if table.loc[m, "on_front"] else "no",
                 num(p_front[m], "{:.2f}")]
                for m in p_front.sort_values(ascending=False, kind="stable").index]
        page.add(f"<p class='muted'>P(on front): share of {RESAMPLES} paired bootstrap resamples of the "
                 "validation rows in which the method is on the front. The test figure is reported only: "
                 "nothing here chose on it.</p>"
                 + table_html(["method", f"validation {metric}", f"test {metric} (reported)", "trainable params",
                               "on front", "P(on front)"], rows))
