"""Recommendations for the five scenarios: the top five per scenario, P(best), ties and merging advice."""

from __future__ import annotations

from peftbench.analysis.confidence import RESAMPLES, TIE_SHARE
from peftbench.analysis.recommend import Prepared, rank
from peftbench.analysis.scenarios import SCENARIOS, scenario_weights
from peftbench.report.page import Page, esc, num, table_html


def scenarios_section(page: Page, prep: Prepared) -> None:
    page.add("<h2>Recommendations for the five scenarios</h2><p class='muted'>Weights: the seed "
             "notebook's 0-10 ratings, normalised. No hard limits; use <code>peftbench recommend</code> to "
             f"add them. P(best): share of {RESAMPLES} paired bootstrap resamples of the validation rows, every "
             "cost drawn with its own noise, in "
             "which the method scores highest; tied: scores at least as high as the winner in &ge; "
             f"{TIE_SHARE:.0%} of them.</p>")
    recs = {name: rank(prep, scenario_weights(name)) for name in SCENARIOS}
    drift = list(dict.fromkeys(line for rec in recs.values() for line in rec.drift))
    if drift:
        page.add("<p class='muted'>Timing noise in P(best) and the tied set (every cost drawn with its own "
                 "noise per resample):</p><ul>" + "".join(f"<li>{esc(line)}</li>" for line in drift) + "</ul>")
    for note in dict.fromkeys(n for rec in recs.values() for n in rec.notes):
        page.add(f"<p class='note'>{esc(note)}</p>")
    for name, rec in recs.items():
        weights = ", ".join(f"{d} {w:.2f}" for d, w in rec.weights.items())
        has_p = "p_best" in rec.ranking
        rows = [[str(i), str(m) + (" (tied)" if m in rec.tied[1:] else ""), num(r["score"])]
                + ([num(r["p_best"], "{:.2f}")] if has_p else []) + [num(r["coverage"], "{:.0%}")]
                for i, (m, r) in enumerate(rec.ranking.head(5).iterrows(), 1)]
        tied = [m for m in rec.tied if m != rec.top]
        merging = rec.advice.get("merging")
        page.add(f"<div class='scenario'><h3>{esc(name)}: {esc(rec.top)}</h3>"
                 f"<p class='muted'>{esc(weights)}; chosen on validation</p>"
                 + (f"<p>Reported (held out, not chosen on): {esc(rec.held_out.text())}</p>"
                    if rec.held_out is not None else "")
                 +                  f"<p>Statistically tied with {esc(rec.top)}: {esc(', '.join(tied) or 'none')}</p>"
                 + table_html(["#", "method", "score"] + ["P(best)"] * has_p + ["weight covered"], rows)
                 + (f"<p>{esc(merging)}</p>" if merging else "") + "</div>")
