"""Results: one table per study with the terminal table's columns, mean ± 95% interval (its header says when
that holds row noise only: one seed), collapsed methods marked."""

from __future__ import annotations

import pandas as pd

from peftbench.analysis.selection import collapsed_trials, describe_collapsed
from peftbench.report.page import Page, esc, num, table_html
from peftbench.report.sections.study_facts import COLLAPSED_MARK, collapsed_methods, generate_study, measured
from peftbench.report.tables import COLUMNS, SCALE, interval_label, summary_frame, task_headers
from peftbench.report.tables import format_cell as terminal_cell

REPORT_SCALE = SCALE  # robustness_drop: a fraction of accuracy -> points, as in the terminal table


def report_summary(records: pd.DataFrame, setup_records: pd.DataFrame | None = None
                   ) -> tuple[pd.DataFrame, list[tuple[str, str, str]]]:
    """summary_frame and the columns of the terminal table it has figures for: (frame, shown columns).
    A column shows when some trial of the setup measured it (`setup_records`: all its studies), so each
    study's table has the same columns and '-' says "not in this study"; one nobody measured (an
    encoder's zero-shot gain, OOD without --ood) is left out. A generate study takes the generate headers."""
    agg = summary_frame(records)
    scope = records if setup_records is None else setup_records
    headers = task_headers(records)
    return agg, [(m, headers.get(m, h), f) for m, h, f in COLUMNS
                 if f"{m}_mean" in agg and measured(scope, m)]


def _encoder_cell(row: pd.Series, metric: str, fmt: str) -> str:
    """mean ± half the 95% interval; a zero-width interval says nothing and is left out."""
    k = REPORT_SCALE.get(metric, 1.0)
    text = num(row[f"{metric}_mean"] * k, fmt)
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    half = (high - low) / 2 if low is not None and high is not None else float("nan")
    if not pd.isna(half) and half > 0 and text != "-":
        text += " ± " + fmt.format(half * k).lstrip("+")
    return text


def results_section(page: Page, records: pd.DataFrame) -> None:
    page.add("<h2>Results</h2>")
    collapsed = collapsed_methods(records)
    for study, grp in records.groupby("study", sort=False):
        agg, shown = report_summary(grp, records)
        # a generate study's cells are the terminal table's (TTFT with its IQR, the gain in points)
        cell = terminal_cell if generate_study(grp) else _encoder_cell
        several = bool((agg["seeds"] > 1).any())
        rows = []
        for _, row in agg.iterrows():
            name = str(row["method"]) + (" *" if several and row.get("significant_vs_baseline") else "")
            name += COLLAPSED_MARK if str(row["method"]) in collapsed else ""
            rows.append([name, str(row["train_size"]), str(row["seeds"])]
                        + [cell(row, metric, fmt) for metric, _, fmt in shown])
        # "rows only, 1 seed": the interval holds row noise, no training randomness
        shows_ci = any(" ± " in c for r in rows for c in r[3:])
        note = f" - mean ± {interval_label(agg['seeds'])}" if shows_ci else ""
        if several and "Full" in set(grp["method"]):
            note += "; * differs from Full"
        page.add(f"<h3>Study {esc(study)} <span class='muted'>{esc(note)}</span></h3>")
        page.add(table_html(["method", "train n", "seeds"] + [h for _, h, _ in shown], rows))
    trials = collapsed_trials(records)
    if trials:
        page.add(f"<p class='note collapsed'>{esc(COLLAPSED_MARK.strip())} = predicts almost one class: "
                 f"{esc(describe_collapsed(trials))}</p>")
