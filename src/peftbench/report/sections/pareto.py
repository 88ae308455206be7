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
    page.add(f"<h2>Pareto front: {metric} vs trainable parameters</h2>")
    if not (measured(means, "accuracy") and measured(means, "trainable_params")):
        page.not_run("Accuracy or trainable parameters were not measured: no Pareto front.")
        return
    objectives = [Objective("accuracy", "max"), Objective("trainable_params", "min")]
    table = pareto_table(means, objectives)
    page.add('<div class="plots">' + page.plot("pareto", "Methods no other method beats on both",
                                                plots.pareto(table, "trainable_params", "accuracy", colors,
                                                             y_label=f"test {metric}"))
             + "</div>")
    page.add(f"<p>On the front: {esc(', '.join(map(str, table.index[table['on_front']])))}</p>")
    resampled = prep.resampled if prep is not None else None
    if resampled is not None:
        p_front = front_probability(table, objectives, resampled)
        rows = [[str(m), num(table.loc[m, "accuracy"]), f"{table.loc[m, 'trainable_params']:,.0f}",
                 "yes" if table.loc[m, "on_front"] else "no", num(p_front[m], "{:.2f}")]
                for m in p_front.sort_values(ascending=False, kind="stable").index]
        page.add(f"<p class='muted'>P(on front): share of {RESAMPLES} paired bootstrap resamples of the test "
                 "rows in which the method is on the front.</p>"
                 + table_html(["method", "accuracy", "trainable params", "on front", "P(on front)"], rows))
