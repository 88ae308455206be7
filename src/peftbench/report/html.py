"""One self-contained HTML report of a store: tables, inline SVG plots, recommendations, provenance.

Everything is built in memory first and then written atomically (temp file / temp folder, then
rename), so a failure leaves the previous report intact and nothing half-written. Every string that
comes from the store or the user goes through html.escape.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from peftbench.analysis.confidence import RESAMPLES, TIE_SHARE, front_probability
from peftbench.analysis.curves import (
    DATA_EFFICIENCY_STUDY,
    RANK_SWEEP_STUDY,
    accuracy_by_size,
    data_efficiency_summary,
    smallest_sufficient_rank,
    study_records,
)
from peftbench.analysis.pareto import Objective, pareto_table
from peftbench.analysis.recommend import Prepared, data_advice, prepare, rank, rank_advice, select_study
from peftbench.analysis.scenarios import SCENARIOS, scenario_weights
from peftbench.analysis.scores import COUNTING_RULE, FORGETTING_ZERO_NATS, scoring_notes
from peftbench.analysis.selection import collapsed_mask, collapsed_trials, describe_collapsed, select_records
from peftbench.errors import PeftbenchError
from peftbench.report import plots
from peftbench.report.tables import COLUMNS, SCALE, summary_frame, task_headers
from peftbench.report.tables import format_cell as terminal_cell
from peftbench.stats.summary import aggregate, reportable, summarize
from peftbench.tasks.generate.evaluate import exact_match

RADAR_DEFAULT = ["Full", "LoRA-r8", "PrefixTuning-len32", "BitFit", "AdaLoRA"]
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1180px;
color:#1d2330;padding:0 1rem;line-height:1.45}
h1{font-size:1.7rem;margin-bottom:.2rem}
h2{border-bottom:2px solid #dfe3ea;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #dfe3ea;padding:.25rem .5rem;text-align:right;white-space:nowrap}th{background:#f3f5f9}
td.t,th.t{text-align:left;white-space:normal}.scroll{overflow-x:auto}
.plots{display:flex;flex-wrap:wrap;gap:1rem}
figure.plot{margin:0;border:1px solid #dfe3ea;border-radius:6px;padding:.4rem;background:#fff;
flex:0 1 calc(50% - .5rem);box-sizing:border-box}figure.plot.wide{flex-basis:100%}
figure.plot svg{width:100%;height:auto}figcaption{font-size:.8rem;color:#5b6475}
.muted{color:#5b6475}
.note{background:#fff8e1;border-left:4px solid #f5b400;padding:.3rem .6rem;margin:.4rem 0}
.scenario{border:1px solid #dfe3ea;border-radius:6px;padding:.3rem .9rem;margin:.8rem 0}
.collapsed{color:#b3261e;font-weight:600}
"""
REPORT_SCALE = SCALE  # robustness_drop: a fraction of accuracy -> points, as in the terminal table
COLLAPSED_MARK = " [collapsed]"


@dataclass(frozen=True)
class WrittenReport:
    html: Path
    png_dir: Path
    png_count: int


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


class Page:
    """Collects HTML parts and rendered plots; plots are referenced by name for their PNG file."""

    def __init__(self, png_folder: str):
        self.parts: list[str] = []
        self.pngs: dict[str, bytes] = {}
        self.png_folder = png_folder

    def add(self, text: str) -> None:
        self.parts.append(text)

    def plot(self, name: str, caption: str, fig, wide: bool = False) -> str:
        rendered = plots.render(fig)
        self.pngs[name] = rendered.png
        return (f'<figure class="plot{" wide" if wide else ""}" id="plot-{esc(name)}">{rendered.svg}'
                f'<figcaption>{esc(caption)} (<a href="{esc(self.png_folder)}/{esc(name)}.png">PNG</a>)'
                "</figcaption></figure>")

    def not_run(self, what: str) -> None:
        self.add(f'<p class="note">{esc(what)}</p>')


def _num(value: object, fmt: str = "{:.3f}") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


NUMERIC = re.compile(r"^(-|#?[-+]?[\d,]*\.?\d+(e[-+]?\d+)?%?( ± [\d.,]+)?( \[[\d.,]+-[\d.,]+\])?( pts)?"
                     r"( \(no CI\))?( \*)?)$")


def generate_study(records: pd.DataFrame) -> bool:
    """--task generate records: their accuracy is exact match and their latency the time to first token."""
    return "task" in records and bool((records["task"] == "generate").any())


def metric_name(records: pd.DataFrame) -> str:
    """What the records' accuracy column measures, for axes and headings."""
    return "exact match" if generate_study(records) else "accuracy"


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
                 if f"{m}_mean" in agg and _measured(scope, m)]


def _encoder_cell(row: pd.Series, metric: str, fmt: str) -> str:
    """mean ± half the 95% interval; a zero-width interval says nothing and is left out."""
    k = REPORT_SCALE.get(metric, 1.0)
    text = _num(row[f"{metric}_mean"] * k, fmt)
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    half = (high - low) / 2 if low is not None and high is not None else float("nan")
    if not pd.isna(half) and half > 0 and text != "-":
        text += " ± " + fmt.format(half * k).lstrip("+")
    return text


def collapsed_methods(records: pd.DataFrame) -> set[str]:
    return set(records.loc[collapsed_mask(records), "method"].astype(str))


def table_html(header: list[str], rows: list[list[str]]) -> str:
    """Cells are escaped here: pass plain text. Columns of numbers align right, others left."""
    classes = ["" if all(NUMERIC.match(r[i]) for r in rows) else " class='t'" for i in range(len(header))]
    head = "".join(f"<th{c}>{esc(h)}</th>" for h, c in zip(header, classes))
    body = "".join("<tr>" + "".join(f"<td{c}>{esc(text)}</td>" for text, c in zip(row, classes)) + "</tr>"
                   for row in rows)
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


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
        note = " - mean ± 95% CI" if any(" ± " in c for r in rows for c in r[3:]) else ""
        if several and "Full" in set(grp["method"]):
            note += "; * differs from Full"
        page.add(f"<h3>Study {esc(study)} <span class='muted'>{esc(note)}</span></h3>")
        page.add(table_html(["method", "train n", "seeds"] + [h for _, h, _ in shown], rows))
    trials = collapsed_trials(records)
    if trials:
        page.add(f"<p class='note collapsed'>{esc(COLLAPSED_MARK.strip())} = predicts almost one class: "
                 f"{esc(describe_collapsed(trials))}</p>")


def tradeoff_points(records: pd.DataFrame, means: pd.DataFrame, prep: Prepared | None = None) -> pd.DataFrame:
    """Per method: the plotted means plus an accuracy 95% half width: from the paired bootstrap over rows
    (and seeds) when predictions are stored, else the t-interval over seeds (NaN for one seed)."""
    points = means.copy()
    resampled = prep.resampled if prep is not None else None
    if resampled is not None:
        boot = pd.DataFrame(resampled.values["accuracy"], columns=resampled.methods)
        half = (boot.quantile(0.975) - boot.quantile(0.025)) / 2
        points["accuracy_ci"] = half.reindex(points.index)
        return points
    accuracy = pd.to_numeric(records["accuracy"], errors="coerce")
    points["accuracy_ci"] = accuracy.groupby(records["method"], sort=False).apply(
        lambda values: summarize(values.tolist()).half_width)
    return points


def _measured(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and bool(frame[column].notna().any())


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
        if not _measured(points, x) or not _measured(points, "accuracy"):
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


# Per-method figures of the Generation section: one aggregate() over the section's study, so each agrees
# with the Results table (val_accuracy is validation exact match for --task generate).
DECODER_METRICS = ["val_accuracy", "zero_shot_val_exact_match", "val_gain_over_zero_shot",
                   "general_ce_before", "general_ce_after", "forgetting",
                   "latency_p50_ms", "latency_p25_ms", "latency_p75_ms",
                   "decode_tokens_per_s_batch1", "decode_tokens_per_s_batched",
                   "merged_latency_p50_ms", "merged_decode_tokens_per_s_batch1",
                   "merged_decode_tokens_per_s_batched", "adapter_bytes"]
# cross-entropies to 4 places: a small adapter moves general text by 1e-3 nats or less
FORMATS = {m: f for m, _, f in COLUMNS} | {"general_ce_before": "{:.4f}", "general_ce_after": "{:.4f}",
                                          "forgetting": "{:+.4f}", "decode_tokens_per_s_batch1": "{:.0f}",
                                          "merged_decode_tokens_per_s_batch1": "{:.0f}",
                                          "merged_decode_tokens_per_s_batched": "{:.0f}"}
FORGETTING_NOTE = ("Forgetting: the cross-entropy per token of a fixed general-text sample after training "
                   f"minus before (nats; 0 = unchanged, +{FORGETTING_ZERO_NATS:.3f} = its perplexity "
                   "doubled, where the generalization score reaches 0).")
SAMPLE_NEWLINE = "⏎"  # generated newlines, shown in a table cell that would fold them away


def decoder_frame(records: pd.DataFrame) -> pd.DataFrame:
    """One row per method of the section's study (collapsed methods kept: they are marked), indexed by
    method; the baseline comparison is the Results table's business."""
    metrics = [m for m in DECODER_METRICS if m in records]
    return aggregate(reportable(records), metrics, baseline_method=None).set_index("method", drop=False)


def _cell(row: pd.Series, metric: str) -> str:
    return terminal_cell(row, metric, FORMATS[metric]) if f"{metric}_mean" in row else "-"


def _interval_points(agg: pd.DataFrame, metric: str) -> pd.DataFrame:
    """value/low/high of one metric per method, as the section's plots take them."""
    return pd.DataFrame({"value": agg[f"{metric}_mean"], "low": agg[f"{metric}_ci_low"],
                         "high": agg[f"{metric}_ci_high"]}).astype(float).dropna(subset=["value"])


def _name(method: str, collapsed: set[str]) -> str:
    return method + (COLLAPSED_MARK if method in collapsed else "")


def decoder_section(page: Page, records: pd.DataFrame, label: str, colors: dict) -> None:
    """Generation for --task generate; for a decoder classifier only forgetting; nothing for encoders."""
    if generate_study(records):
        generation_section(page, records, label, colors)
    elif _measured(records, "forgetting"):
        page.add(f"<h2>Forgetting <span class='muted'>({esc(label)})</span></h2>")
        agg = decoder_frame(records)
        page.add(f"<p class='muted'>{esc(FORGETTING_NOTE)}</p>")
        page.add('<div class="plots">' + _forgetting_plot(page, agg, colors) + "</div>")
        page.add(_forgetting_table(agg, collapsed_methods(records)))


def generation_section(page: Page, records: pd.DataFrame, label: str, colors: dict) -> None:
    page.add(f"<h2>Generation <span class='muted'>({esc(label)})</span></h2>")
    agg = decoder_frame(records)
    collapsed = collapsed_methods(records)
    figs = []
    if _measured(agg, "val_accuracy_mean") and _measured(agg, "zero_shot_val_exact_match_mean"):
        floor = agg["zero_shot_val_exact_match_mean"].astype(float)
        page.add(f"<p>Zero-shot floor (the untrained model on the same validation rows): validation exact "
                 f"match {esc(_floor_text(floor))}.</p>")
        fig = plots.exact_match_vs_floor(_interval_points(agg, "val_accuracy"), float(floor.mean()), colors)
        figs.append(page.plot("generation_exact_match", "Validation exact match (95% interval) above the "
                              "zero-shot floor: what training bought", fig))
    else:
        page.not_run("Validation exact match or the zero-shot floor was not measured: no floor plot.")
    if _measured(agg, "forgetting_mean"):
        figs.append(_forgetting_plot(page, agg, colors))
    page.add('<div class="plots">' + "".join(figs) + "</div>")
    page.add("<h3>What training bought, and what it cost</h3><p class='muted'>val EM gain: exact match minus "
             "the zero-shot floor's, its 95% interval paired over the same validation rows. "
             f"{esc(FORGETTING_NOTE)}</p>" + _bought_table(agg, collapsed))
    page.add("<h3>Decoder inference</h3>" + _inference_table(records, agg, collapsed))
    page.add(_samples(records))


def _floor_text(floor: pd.Series) -> str:
    """One setup has one floor; several values would mean trials scored different rows: say so."""
    low, high = floor.min(), floor.max()
    return f"{low:.3f}" if math.isclose(low, high) else f"{low:.3f} to {high:.3f} (differs across trials)"


def _forgetting_plot(page: Page, agg: pd.DataFrame, colors: dict) -> str:
    fig = plots.forgetting(_interval_points(agg, "forgetting"), colors)
    return page.plot("forgetting", "Forgetting per method (nats per token; bars: 95% interval over seeds "
                     "where there are several)", fig)


def _forgetting_table(agg: pd.DataFrame, collapsed: set[str]) -> str:
    metrics = ["general_ce_before", "general_ce_after", "forgetting"]
    return table_html(["method", "general CE before", "after", "forgetting (nats)"],
                      [[_name(m, collapsed)] + [_cell(row, x) for x in metrics] for m, row in agg.iterrows()])


def _bought_table(agg: pd.DataFrame, collapsed: set[str]) -> str:
    """Exact match over the floor (the gain's interval is paired over the same rows) beside forgetting."""
    metrics = ["val_accuracy", "zero_shot_val_exact_match", "val_gain_over_zero_shot", "general_ce_before",
               "general_ce_after", "forgetting"]
    header = ["method", "val EM", "zero-shot val EM", "val EM gain", "general CE before", "after",
              "forgetting (nats)"]
    return table_html(header, [[_name(m, collapsed)] + [_cell(row, x) for x in metrics]
                               for m, row in agg.iterrows()])


def _inference_table(records: pd.DataFrame, agg: pd.DataFrame, collapsed: set[str]) -> str:
    batch = _batch_size(records)
    metrics = ["latency_p50_ms", "decode_tokens_per_s_batch1", "decode_tokens_per_s_batched",
               "merged_latency_p50_ms", "merged_decode_tokens_per_s_batch1",
               "merged_decode_tokens_per_s_batched"]
    header = ["method", "TTFT p50 ms [IQR]", "decode tok/s batch 1", f"decode tok/s batch {batch}",
              "merged TTFT p50 ms", "merged tok/s batch 1", f"merged tok/s batch {batch}",
              "merged greedy outputs", "adapter MB"]
    rows = [[_name(m, collapsed)] + [_cell(row, x) for x in metrics]
            + [merge_check(records[records["method"] == m]), _cell(row, "adapter_bytes")]
            for m, row in agg.iterrows()]
    return ("<p class='muted'>TTFT: time to the first generated token at batch 1, median over repeats "
            "[interquartile range]. Merged: the adapter folded into the base weights.</p>"
            + table_html(header, rows))


def _batch_size(records: pd.DataFrame) -> str:
    sizes = pd.to_numeric(records.get("decode_batch_size", pd.Series(dtype=float)), errors="coerce").dropna()
    return "/".join(str(int(s)) for s in sorted(sizes.unique())) or "N"


def merge_check(records: pd.DataFrame) -> str:
    """Whether merging changed what the model writes, over every seed's probe rows."""
    if "can_merge" not in records:
        return "-"
    if not records["can_merge"].fillna(False).astype(bool).any():
        return "cannot merge"
    errors = [e for e in records.get("merge_error", pd.Series(dtype=object)).dropna() if e]
    checked = records.dropna(subset=["merge_same_greedy"]) if "merge_same_greedy" in records else records[:0]
    if checked.empty:
        return f"merge failed: {errors[0]}" if errors else "-"
    differing = int(pd.to_numeric(checked["merge_rows_differing"], errors="coerce").fillna(0).sum())
    probed = int(pd.to_numeric(checked["merge_probe_rows"], errors="coerce").fillna(0).sum())
    text = f"identical ({probed} rows)" if differing == 0 else f"differ on {differing}/{probed} rows"
    return text + (f"; merge failed in {len(errors)} trial(s)" if errors else "")


def sample_trial(records: pd.DataFrame) -> pd.Series | None:
    """The trial whose samples are shown: the best validation exact match (first on ties) holding texts."""
    if "generations" not in records:
        return None
    have = records[records["generations"].map(lambda g: isinstance(g, list) and bool(g))]
    if have.empty:
        return None
    val = pd.to_numeric(have["val_accuracy"], errors="coerce") if "val_accuracy" in have else \
        pd.Series(float("nan"), index=have.index)
    return have.iloc[int(np.argmax(val.fillna(-math.inf).to_numpy()))]  # argmax: the first on ties


def _samples(records: pd.DataFrame) -> str:
    trial = sample_trial(records)
    if trial is None:
        return "<p class='note'>The records hold no sample generations.</p>"
    zero_shot, references = (v if isinstance(v, list) else [] for v in
                             (trial.get("zero_shot_generations"), trial.get("references")))
    shown = lambda text: str(text).replace("\n", SAMPLE_NEWLINE)  # noqa: E731
    rows = []
    for i, (gen, ref) in enumerate(zip(trial["generations"], references)):
        rows.append([str(i + 1), shown(ref), shown(zero_shot[i]) if i < len(zero_shot) else "-", shown(gen),
                     "yes" if exact_match(gen, ref) else "no"])
    seed = f", seed {trial['seed']}" if "seed" in trial and not pd.isna(trial["seed"]) else ""
    return (f"<h3>Sample generations: {esc(trial['method'])}{esc(seed)}</h3><p class='muted'>The first test "
            "rows, greedy; the trial with the best validation exact match. Exact match after normalisation "
            f"(case, punctuation, articles); {SAMPLE_NEWLINE} = a newline.</p>"
            + table_html(["#", "reference", "zero-shot output", "trained output", "exact match"], rows))


def scores_section(page: Page, dims) -> None:
    page.add("<h2>Dimension scores</h2><p class='muted'>On fixed scales (a constant predictor's accuracy = 0, "
             "no robustness drop = 1, cost as a ratio to the cheapest; see below), means over seeds; "
             f"'-' = not measured. {esc(COUNTING_RULE)}</p>")
    rows = [[str(m)] + [_num(v, "{:.2f}") for v in row] for m, row in dims.scores.iterrows()]
    page.add(table_html(["method"] + list(dims.scores.columns), rows))
    notes = scoring_notes()
    page.add(table_html(["dimension", "metrics used here", "how the score is normalised"],
                        [[d, ", ".join(dims.metrics_used[d]) or "not measured", notes[d]] for d in notes]))


def pareto_section(page: Page, means: pd.DataFrame, colors: dict, prep: Prepared | None = None,
                   metric: str = "accuracy") -> None:
    page.add(f"<h2>Pareto front: {metric} vs trainable parameters</h2>")
    if not (_measured(means, "accuracy") and _measured(means, "trainable_params")):
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
        rows = [[str(m), _num(table.loc[m, "accuracy"]), f"{table.loc[m, 'trainable_params']:,.0f}",
                 "yes" if table.loc[m, "on_front"] else "no", _num(p_front[m], "{:.2f}")]
                for m in p_front.sort_values(ascending=False, kind="stable").index]
        page.add(f"<p class='muted'>P(on front): share of {RESAMPLES} paired bootstrap resamples of the test "
                 "rows in which the method is on the front.</p>"
                 + table_html(["method", "accuracy", "trainable params", "on front", "P(on front)"], rows))


def data_efficiency_section(page: Page, records: pd.DataFrame, colors: dict) -> None:
    page.add("<h2>Data efficiency</h2>")
    rows = study_records(records, DATA_EFFICIENCY_STUDY)
    if rows.empty:
        page.not_run("The data-efficiency study was not run (peftbench study data-efficiency).")
        return
    curves = accuracy_by_size(rows)
    metric = metric_name(rows)
    page.add('<div class="plots">' + page.plot("data_efficiency", f"{metric.capitalize()} vs training-set size",
                                                plots.data_efficiency(curves, colors, metric)) + "</div>")
    summary = data_efficiency_summary(rows)
    page.add(table_html(["method", "smallest size", "accuracy there", "normalised AUC (log size)"],
                        [[str(m), str(int(r["smallest_size"])), _num(r["accuracy_at_smallest_size"]),
                          _num(r["normalized_auc"])] for m, r in summary.iterrows()]))
    advice = data_advice(records)
    if advice:
        page.add(f"<p>{esc(advice)}</p>")


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


def scenarios_section(page: Page, prep: Prepared) -> None:
    page.add("<h2>Recommendations for the five scenarios</h2><p class='muted'>Weights: the seed "
             "notebook's 0-10 ratings, normalised. No hard limits; use <code>peftbench recommend</code> to "
             f"add them. P(best): share of {RESAMPLES} paired bootstrap resamples of the evaluated rows in "
             "which the method scores highest; tied: scores at least as high as the winner in &ge; "
             f"{TIE_SHARE:.0%} of them.</p>")
    recs = {name: rank(prep, scenario_weights(name)) for name in SCENARIOS}
    for note in dict.fromkeys(n for rec in recs.values() for n in rec.notes):
        page.add(f"<p class='note'>{esc(note)}</p>")
    for name, rec in recs.items():
        weights = ", ".join(f"{d} {w:.2f}" for d, w in rec.weights.items())
        has_p = "p_best" in rec.ranking
        rows = [[str(i), str(m) + (" (tied)" if m in rec.tied[1:] else ""), _num(r["score"])]
                + ([_num(r["p_best"], "{:.2f}")] if has_p else []) + [_num(r["coverage"], "{:.0%}")]
                for i, (m, r) in enumerate(rec.ranking.head(5).iterrows(), 1)]
        tied = [m for m in rec.tied if m != rec.top]
        merging = rec.advice.get("merging")
        page.add(f"<div class='scenario'><h3>{esc(name)}: {esc(rec.top)}</h3>"
                 f"<p class='muted'>{esc(weights)}</p>"
                 f"<p>Statistically tied with {esc(rec.top)}: {esc(', '.join(tied) or 'none')}</p>"
                 + table_html(["#", "method", "score"] + ["P(best)"] * has_p + ["weight covered"], rows)
                 + (f"<p>{esc(merging)}</p>" if merging else "") + "</div>")


def _flatten(prov: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in prov.items():
        if isinstance(value, dict) and key in ("versions", "data"):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif key != "start_time":
            text = "-" if value is None else json.dumps(value, sort_keys=True)
            out[prefix + key] = value if isinstance(value, str) else text
    return out


def provenance_section(page: Page, records: pd.DataFrame) -> None:
    page.add("<h2>Provenance</h2>")
    for study, grp in records.groupby("study", sort=False):
        provs = [p for p in grp.get("provenance", pd.Series(dtype=object)) if isinstance(p, dict)]
        if not provs:
            page.not_run(f"Study {study}: the records carry no provenance.")
            continue
        counts: dict[str, Counter] = {}
        for prov in provs:
            for key, value in _flatten(prov).items():
                counts.setdefault(key, Counter())[value] += 1
        rows = [[k, "; ".join(v if len(c) == 1 else f"{v} ({n} trials)" for v, n in c.most_common())]
                for k, c in counts.items()]
        starts = sorted(p["start_time"] for p in provs if p.get("start_time"))
        if starts:
            rows.append(["trials started", f"{starts[0]} ... {starts[-1]}"])
        page.add(f"<h3>Study {esc(study)} ({len(provs)} trials)</h3>" + table_html(["field", "value"], rows))
        if len(counts.get("data.split_hash", ())) > 1:
            page.not_run(f"Study {study}: trials trained on different data splits (split_hash differs).")


def build_page(records: pd.DataFrame, db_path: Path, png_folder: str, study: str | None,
               radar_methods: list[str] | None, interactive: bool = False, **selection) -> Page:
    """selection: setup, model, dataset, include_collapsed (see analysis.recommend.prepare)."""
    page = Page(png_folder)
    include = selection.pop("include_collapsed", False)
    records = select_records(records, include_collapsed=True, **selection).records  # one setup, all trials
    prep = prepare(records, study, include_collapsed=include)
    selected, label, dims = prep.selected, prep.label, prep.dims
    colors = plots.method_colors(list(dict.fromkeys(records["method"])))
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    counts = ", ".join(f"{s}: {n} trials" for s, n in records["study"].value_counts(sort=False).items())
    setup = f"setup {esc(prep.setup_label)} - " if prep.setup_label else ""
    page.add(f"<h1>peftbench report</h1><p class='muted'>{setup}store {esc(db_path)} - {esc(counts)} - "
             f"written {stamp}</p>")
    results_section(page, records)
    tradeoff_section(page, selected, label, dims, colors, radar_methods, prep)
    study_rows = select_study(records, study)[0]  # collapsed trials kept, and marked
    if interactive:  # Plotly views after the static plots they mirror (report/interactive.py)
        from peftbench.report.interactive import interactive_section

        page.add(interactive_section(study_rows, label, colors))
    decoder_section(page, study_rows, label, colors)
    pareto_section(page, dims.means, colors, prep, metric_name(selected))
    data_efficiency_section(page, prep.records, colors)
    rank_section(page, prep.records)
    scenarios_section(page, prep)
    scores_section(page, dims)
    provenance_section(page, records)
    return page


def write_report(records: pd.DataFrame, db_path: Path, output: Path, study: str | None = None,
                 radar_methods: list[str] | None = None, interactive: bool = False,
                 **selection) -> WrittenReport:
    """Write `output` and `<stem>_plots/*.png` beside it, replacing an earlier report atomically.
    selection: setup, model, dataset, include_collapsed."""
    if records.empty:
        raise PeftbenchError(f"no finished trials in {db_path}")
    output = Path(output)
    if output.is_dir():
        raise PeftbenchError(f"--output {output} is a directory; give a file name such as report.html")
    png_dir = output.with_name(output.stem + "_plots")
    if png_dir.exists() and (not png_dir.is_dir() or any(p.suffix != ".png" for p in png_dir.iterdir())):
        raise PeftbenchError(f"{png_dir} exists and holds files peftbench did not write; move it or pick "
                             "another --output")
    page = build_page(records, db_path, png_dir.name, study, radar_methods, interactive, **selection)
    document = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>peftbench report</title>"
                f"<style>{CSS}</style></head><body>" + "\n".join(page.parts) + "</body></html>")
    output.parent.mkdir(parents=True, exist_ok=True)
    _replace_atomically(output, document, png_dir, page.pngs)
    return WrittenReport(output, png_dir, len(page.pngs))


def _replace_atomically(output: Path, document: str, png_dir: Path, pngs: dict[str, bytes]) -> None:
    """Write both into temp names in the same folder, then rename; on failure restore what was there."""
    fd, tmp_html = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{png_dir.name}.", dir=output.parent))
    old_dir = png_dir.with_name(f".{png_dir.name}.old-{os.getpid()}")
    moved_old = moved_new = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(document)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_html, 0o666 & ~umask)  # temp files are private; the report should not be
        os.chmod(tmp_dir, 0o777 & ~umask)
        for name, data in pngs.items():
            (tmp_dir / f"{name}.png").write_bytes(data)
        if png_dir.exists():
            png_dir.rename(old_dir)
            moved_old = True
        tmp_dir.rename(png_dir)
        moved_new = True
        os.replace(tmp_html, output)
    except BaseException:
        shutil.rmtree(png_dir if moved_new else tmp_dir, ignore_errors=True)
        if moved_old:
            old_dir.rename(png_dir)
        Path(tmp_html).unlink(missing_ok=True)
        raise
    shutil.rmtree(old_dir, ignore_errors=True)
