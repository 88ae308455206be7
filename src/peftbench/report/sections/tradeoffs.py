"""Tradeoffs: the seed notebook's three bubble plots (accuracy against parameters, time, memory) and the
radar of dimension scores."""

from __future__ import annotations

import pandas as pd

from peftbench.analysis.held_out import held_out_table
from peftbench.analysis.recommend import Prepared
from peftbench.report import plots
from peftbench.report.page import Page, esc
from peftbench.report.sections.study_facts import measured, metric_name
from peftbench.stats.summary import summarize

RADAR_DEFAULT = ["Full", "LoRA-r8", "PrefixTuning-len32", "BitFit", "AdaLoRA"]


def tradeoff_points(records: pd.DataFrame, means: pd.DataFrame, prep: Prepared | None = None) -> pd.DataFrame:
    """Per method: the plotted means plus the (test, reported) accuracy's 95% half width: from the stored
    rows (and seeds) when predictions are stored, else the t-interval over seeds (NaN for one seed)."""
    points = means.copy()
    held = held_out_table(records, list(points.index))
    if held["test_accuracy_low"].notna().any():
        points["accuracy_ci"] = ((held["test_accuracy_high"] - held["test_accuracy_low"]) / 2).reindex(points.index)
        return points
    accuracy = pd.to_numeric(records["accuracy"], errors="coerce")
    points["accuracy_ci"] = accuracy.groupby(records["method"], sort=False).apply(
        lambda values: summarize(values.tolist()).half_width)
    return points


def tradeoff_section(page: Page, records: pd.DataFrame, label: str, dims, colors: dict,
                     radar_methods: list[str] | None, prep: Prepared | None = None) -> None:
    page.add(f"<h2>Tradeoffs <span class='muted'>({esc(label)})</span></h2>")
    points = tradeoff_points(records, dims.means, prep)
    bubbles = [  # the seed's three: name, title, x, bubble size, x label, size label, size format, log x
        ("param_vs_accuracy", "Parameter efficiency vs performance", "trainable_pct", "train_seconds",
         "trainable parameters (% of base model, log scale)", "train seconds", ".0f", True),
        ("time_vs_accuracy", "Training time vs performance", "train_seconds", "trainable_pct",
         "training time (s)", "trainable %", ".3g", False),
        ("memory_vs_accuracy", "Peak training memory vs performance", "train_memory_mb", "trainable_pct",
         "peak training memory, net of the process baseline (MB)", "trainable %", ".3g", False),
    ]
    figs, metric = [], metric_name(records)
    for name, title, x, size, xlabel, size_label, size_fmt, log_x in bubbles:
        if not measured(points, x) or not measured(points, "accuracy"):
            page.not_run(f"{title}: {x} or accuracy was not measured in {label}.")
            continue
        fig = plots.bubble(points, x, size, colors, title=title, xlabel=xlabel, size_label=size_label,
                           size_fmt=size_fmt, log_x=log_x, metric=metric)
        figs.append(page.plot(name, f"{title}; bubble area = {size_label}", fig))
    wanted = radar_methods or RADAR_DEFAULT
    chosen = [m for m in wanted if m in dims.scores.index] or list(dims.scores.index[:5])
    missing = [m for m in wanted if m not in dims.scores.index] if radar_methods else []
    figs.append(page.plot("radar", "Six dimension scores for " + ", ".join(chosen),
                          plots.radar(dims.scores.loc[chosen], colors)))
    page.add('<div class="plots">' + "".join(figs) + "</div>")
    if missing:
        page.not_run("Radar: not in this study, left out: " + ", ".join(missing))
