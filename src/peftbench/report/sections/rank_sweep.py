"""LoRA rank sweep: accuracy against rank and the smallest rank that suffices."""

from __future__ import annotations

import pandas as pd

from peftbench.analysis.curves import RANK_SWEEP_STUDY, smallest_sufficient_rank, study_records
from peftbench.analysis.recommend import rank_advice
from peftbench.report import plots
from peftbench.report.page import Page, esc
from peftbench.report.sections.study_facts import metric_name


def rank_section(page: Page, records: pd.DataFrame) -> None:
    page.add("<h2>LoRA rank sweep</h2>")
    choice = smallest_sufficient_rank(study_records(records, RANK_SWEEP_STUDY))
    if choice is None:
        page.not_run("The rank-sweep study was not run (peftbench study rank-sweep).")
        return
    metric = metric_name(study_records(records, RANK_SWEEP_STUDY))
    fig = plots.rank_sweep(choice.curve, choice.rank, metric)
    page.add('<div class="plots">' + page.plot("rank_sweep", f"Rank vs {metric} and trainable % vs {metric}",
                                                fig, wide=True) + "</div>")
    page.add(f"<p>{esc(rank_advice(records))}</p>")
