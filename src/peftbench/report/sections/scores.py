"""Dimension scores: the six scores per method on fixed scales, and how each is normalised."""

from __future__ import annotations

from peftbench.analysis.scores import COST_REFERENCE, COUNTING_RULE, scoring_notes
from peftbench.report.page import Page, esc, num, table_html


def scores_section(page: Page, dims) -> None:
    page.add("<h2>Dimension scores</h2><p class='muted'>On fixed scales (a constant predictor's accuracy "
             "= 0, a constant predictor's OOD balanced accuracy = 0, costs on a fixed log scale; see below), "
             f"means over seeds; '-' = not measured. Costs: {esc(COST_REFERENCE)}. {esc(COUNTING_RULE)}</p>")
    timing = [note for lines in getattr(dims, "timing_notes", {}).values() for note in lines]
    if timing:
        page.add("<p class='muted'>" + "<br>".join(esc(n) for n in timing) + "</p>")
    rows = [[str(m)] + [num(v, "{:.2f}") for v in row] for m, row in dims.scores.iterrows()]
    page.add(table_html(["method"] + list(dims.scores.columns), rows))
    notes = scoring_notes()
    page.add(table_html(["dimension", "metrics used here", "how the score is normalised"],
                        [[d, ", ".join(dims.metrics_used[d]) or "not measured", notes[d]] for d in notes]))
