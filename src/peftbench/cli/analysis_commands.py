"""`peftbench recommend`, `pareto` and `report`: thin commands over peftbench.analysis and .report.

cli/app.py registers them (`register`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from peftbench.cli.console import console, err_console
from peftbench.cli.race_view import race_notes
from peftbench.cli.signature import DB_OPTION
from peftbench.errors import PeftbenchError

StudyOption = typer.Option(None, "--study", help="study to rank (default: tradeoff when present, else all)")
SETUP_OPT = typer.Option(None, "--setup", help="setup key to use when the store holds several (they are "
                         "listed when you need to pick)")
MODEL_OPT = typer.Option(None, "--model", help="only trials of this model")
DATASET_OPT = typer.Option(None, "--dataset", help="only trials on this dataset")
COLLAPSED_OPT = typer.Option(False, "--include-collapsed", help="rank collapsed trials too (left out by "
                             "default: they predict almost one class)")


def stored_races(db_path: Path, selected: pd.DataFrame | None = None) -> pd.DataFrame:
    """The store's race decisions (store/races.py), only of races over the ranked trials when given."""
    from peftbench.store.db import Store
    from peftbench.store.races import races_frame

    with Store(db_path, create=False) as store:
        frame = races_frame(store.conn)
    if selected is not None and not frame.empty:
        frame = frame[frame["study"].isin(set(selected["study"]))]
    return frame


def load_records(db: str | None) -> tuple[pd.DataFrame, Path]:
    """Every finished trial of the store; an empty store is a user mistake, said in one line."""
    from peftbench.store.db import Store, default_db_path

    db_path = Path(db) if db else default_db_path()
    with Store(db_path, create=False) as store:
        records = store.records()
    if records.empty:
        raise PeftbenchError(f"no finished trials in {db_path}")
    return records, db_path


def _fmt(value: object, spec: str = ".3f") -> str:
    return "-" if value is None or pd.isna(value) else format(value, spec)


def _measure(value: float) -> str:
    """Large counts in full with separators (22,700,000), small values to four significant digits."""
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def _choose_weights(scenario: str | None, weights: str | None, interactive: bool) -> tuple[dict, str]:
    from peftbench.analysis.scenarios import (
        DEFAULT_SCENARIO,
        normalize_weights,
        parse_weights,
        scenario_weights,
    )
    from peftbench.analysis.scores import DIMENSION_NAMES

    given = [name for name, value in (("--scenario", scenario), ("--weights", weights),
                                      ("--interactive", interactive or None)) if value is not None]
    if len(given) > 1:
        raise PeftbenchError("give only one of --scenario, --weights and --interactive "
                             f"(got {' and '.join(given)})")
    if weights is not None:
        return parse_weights(weights), "your weights"
    if interactive:
        err_console.print("Rate how much each dimension matters to you, 0 (not at all) to 10 (most):")
        return normalize_weights({d: _rating(d) for d in DIMENSION_NAMES}), "your ratings"
    name = scenario or DEFAULT_SCENARIO
    return scenario_weights(name), f"scenario {name}" + ("" if scenario else " (default)")


def _rating(dimension: str) -> float:
    """Ask until the answer is a whole number from 0 to 10 (end of input aborts)."""
    while True:
        value = typer.prompt(f"  {dimension}", default=5, type=int, err=True)
        if 0 <= value <= 10:
            return float(value)
        err_console.print("  answer with a whole number from 0 to 10")


def ranking_table(rec, title: str) -> Table:
    from peftbench.analysis.scores import DIMENSION_NAMES

    table = Table(title=title)
    partial = bool((rec.ranking["coverage"] < 0.999).any())
    has_topsis = "topsis" in rec.ranking
    has_p = "p_best" in rec.ranking
    columns = ["#", "method", "score"] + ["P(best)"] * has_p + ["coverage"] * partial + ["TOPSIS"] * has_topsis
    for col in columns:
        table.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    for dim in DIMENSION_NAMES:
        table.add_column(dim.replace("_", " ").replace("efficiency", "eff."), justify="right")
    topsis_rank = rec.ranking["topsis"].rank(ascending=False, method="min") if has_topsis else None
    for i, (method, row) in enumerate(rec.ranking.iterrows(), 1):
        name = escape(str(method)) + (" (tied)" if method in rec.tied[1:] else "")
        cells = [str(i), name, _fmt(row["score"])]
        if has_p:
            cells.append(_fmt(row["p_best"], ".2f"))
        if partial:
            cells.append(_fmt(row["coverage"], ".0%"))
        if has_topsis:
            cells.append(f"{_fmt(row['topsis'])} (#{int(topsis_rank[method])})")
        cells += [_fmt(row[d], ".2f") for d in DIMENSION_NAMES]
        table.add_row(*cells)
    return table


def exclusions_table(rec) -> Table:
    table = Table(title="Excluded by your limits")
    for col in ("method", "limit", "metric", "its value"):
        table.add_column(col)
    for e in rec.excluded:
        value = "not measured" if e.value is None else _measure(e.value)
        table.add_row(escape(e.method), e.limit, e.metric, value)
    return table


SCENARIO_OPT = typer.Option(None, "--scenario", help="performance-critical | resource-constrained | "
                            "limited-data | deployment-focused | balanced (the default)")
WEIGHTS_OPT = typer.Option(None, "--weights", help="dimension=value,... e.g. performance=10,"
                           "parameter_efficiency=3 (normalised; dimensions not named get 0)")
INTERACTIVE_OPT = typer.Option(False, "--interactive", help="rate each dimension 0-10 at prompts")
TOPSIS_OPT = typer.Option(False, "--topsis", help="add a TOPSIS ranking over the raw metrics")
MEMORY_OPT = typer.Option(None, "--max-memory-mb", help="training memory limit, net of the process's own "
                          "baseline: peak_rss_net_mb (peak RSS - RSS before training) on CPU, "
                          "peak_cuda_allocated_mb on GPU stores")
ALL_SCENARIOS_OPT = typer.Option(False, "--all-scenarios", help="one line per scenario: winner (chosen on "
                                 "validation), P(best), the methods tied with it, and its test figures")
PARAMS_OPT = typer.Option(None, "--max-trainable-params", help="trainable parameter limit")
ACCURACY_OPT = typer.Option(None, "--min-accuracy", help="lowest acceptable validation accuracy (exact match "
                            "for --task generate), 0-1: limits are choices, so they never read the test split")
SECONDS_OPT = typer.Option(None, "--max-train-seconds", help="training time limit")
LATENCY_OPT = typer.Option(None, "--max-latency-ms", help="p50 latency limit (merged latency when the method "
                           "can merge)")
OBJECTIVES_OPT = typer.Option(None, "--objectives", help="metric:max|min,... e.g. "
                              "accuracy:max,peak_rss_mb:min,trainable_params:min (accuracy, f1, ... are read "
                              "on validation: a front is a choice; the test figures are shown beside)")
OUTPUT_OPT = typer.Option(None, "--output", "-o", help="HTML file to write (default: report.html beside the "
                          "store); PNGs go to <name>_plots/ next to it")
INTERACTIVE_REPORT_OPT = typer.Option(False, "--interactive", help="add Plotly views: hover, legend "
                                      "toggling, a Pareto view on any two fields (+4.8 MB of plotly.js)")
RADAR_OPT = typer.Option(None, "--radar-methods", help="methods on the radar chart (default: Full, LoRA-r8, "
                         "PrefixTuning-len32, BitFit, AdaLoRA)")


def print_drift(lines: list[str]) -> None:
    """The costs' noise that P(best), the tied set and P(on front) used, one line per kind of cost."""
    for line in lines:
        console.print(f"timing noise: {escape(line)}", highlight=False)


def _tied_text(rec) -> str:
    others = [m for m in rec.tied if m != rec.top]
    return ", ".join(others) if others else "none"


def _with_interval(mean: float, low: float, high: float) -> str:
    return _fmt(mean) + ("" if pd.isna(low) else f" [{low:.3f}, {high:.3f}]")


def scenarios_table(recs: dict, title: str) -> Table:
    """Per scenario: the winner chosen on validation, then its test figures (reported, never chosen on)."""
    table = Table(title=title)
    for col in ("scenario", "recommended", "P(best)", "score", "statistically tied with it",
                "its test accuracy [95% CI]", "its test F1 [95% CI]"):
        table.add_column(col, justify="left" if col in ("scenario", "recommended", "statistically tied with it")
                         else "right")
    for name, rec in recs.items():
        if rec.top is None:
            table.add_row(name, "none meets every limit", "-", "-", "-", "-", "-")
            continue
        row, h = rec.ranking.iloc[0], rec.held_out
        table.add_row(name, escape(rec.top), _fmt(row.get("p_best"), ".2f"), _fmt(row["score"]),
                      escape(_tied_text(rec)),
                      _with_interval(h.test_accuracy, h.test_accuracy_low, h.test_accuracy_high),
                      _with_interval(h.test_f1, h.test_f1_low, h.test_f1_high))
    table.caption = ("chosen on validation-side figures; the test figures are the winner's held-out report, "
                     "never used in the choice")
    return table


def recommend(
    db: str | None = DB_OPTION, study: str | None = StudyOption, scenario: str | None = SCENARIO_OPT,
    weights: str | None = WEIGHTS_OPT, interactive: bool = INTERACTIVE_OPT, use_topsis: bool = TOPSIS_OPT,
    max_memory_mb: float | None = MEMORY_OPT, max_trainable_params: float | None = PARAMS_OPT,
    min_accuracy: float | None = ACCURACY_OPT, max_train_seconds: float | None = SECONDS_OPT,
    max_latency_ms: float | None = LATENCY_OPT, all_scenarios: bool = ALL_SCENARIOS_OPT,
    setup: str | None = SETUP_OPT, model: str | None = MODEL_OPT, dataset: str | None = DATASET_OPT,
    include_collapsed: bool = COLLAPSED_OPT,
) -> None:
    """Rank methods by measured dimension scores for a scenario or your weights, under hard limits, with
    each method's probability of being best and the methods statistically tied with the winner."""
    from peftbench.analysis.recommend import Limits, prepare, rank
    from peftbench.analysis.scenarios import SCENARIOS, scenario_weights

    limits = Limits(max_memory_mb, max_trainable_params, min_accuracy, max_train_seconds, max_latency_ms)
    limits.validate()
    if all_scenarios and (scenario or weights or interactive):
        raise PeftbenchError("--all-scenarios ranks the five scenarios; leave out --scenario, --weights and "
                             "--interactive")
    records, db_path = load_records(db)  # before any prompt: a wrong --db should not waste the user's ratings
    prep = prepare(records, study, setup=setup, model=model, dataset=dataset,
                   include_collapsed=include_collapsed)
    where = escape(prep.label) + (f" - setup {escape(prep.setup_label)}" if prep.setup_label else "")
    if all_scenarios:
        recs = {name: rank(prep, scenario_weights(name), limits, use_topsis) for name in SCENARIOS}
        console.print(scenarios_table(recs, f"Recommendation per scenario - {where} of {escape(str(db_path))}"))
        print_drift(list(dict.fromkeys(line for rec in recs.values() for line in rec.drift)))
        for note in dict.fromkeys(n for rec in recs.values() for n in rec.notes):
            console.print(f"note: {escape(note)}", highlight=False)
        return
    chosen, source = _choose_weights(scenario, weights, interactive)
    rec = rank(prep, chosen, limits, use_topsis)
    shown = ", ".join(f"{d} {w:.2f}" for d, w in chosen.items() if w > 0)
    if len(rec.ranking):
        console.print(ranking_table(rec, f"Recommendation for {source} - {where} of {escape(str(db_path))}"))
    console.print(f"weights: {shown}", highlight=False)
    print_drift(rec.drift)
    if rec.excluded:
        console.print(exclusions_table(rec))
    for note in rec.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    for line in race_notes(stored_races(db_path, prep.selected)):
        console.print(f"note: {escape(line)}", highlight=False)
    if not len(rec.ranking):
        raise PeftbenchError("no method meets every limit (see the table above); relax a limit")
    p_best = rec.ranking.iloc[0].get("p_best")
    confidence = f" (P(best) {p_best:.2f})" if p_best is not None and not pd.isna(p_best) else ""
    console.print(f"[bold]Recommended: {escape(rec.top)}[/bold]{confidence}, chosen on validation")
    console.print(f"Its held-out test figures (reported, not used in the choice): {escape(rec.held_out.text())}",
                  highlight=False)
    console.print(f"Statistically tied with it: {escape(_tied_text(rec))}", highlight=False)
    for line in rec.advice.values():
        console.print(f"  - {escape(line)}", highlight=False)


def pareto(objectives: str | None = OBJECTIVES_OPT, db: str | None = DB_OPTION,
           study: str | None = StudyOption, setup: str | None = SETUP_OPT, model: str | None = MODEL_OPT,
           dataset: str | None = DATASET_OPT, include_collapsed: bool = COLLAPSED_OPT) -> None:
    """Methods no other method beats on every objective (means over seeds), with each method's
    probability of being on the front (paired bootstrap over the validation and OOD rows). A front is a
    choice: accuracy, f1, ... are read on validation; their test figures are shown beside, reported only."""
    from peftbench.analysis.confidence import RESAMPLES, front_probability, resample_metrics
    from peftbench.analysis.pareto import pareto_table, parse_objectives
    from peftbench.analysis.recommend import select_study
    from peftbench.analysis.scores import method_means
    from peftbench.analysis.selection import select_records

    if not objectives:
        raise PeftbenchError("--objectives is required, e.g. --objectives accuracy:max,trainable_params:min")
    records, _ = load_records(db)
    sel = select_records(records, setup, model, dataset, include_collapsed)
    if sel.records.empty:
        raise PeftbenchError("no trials left for a Pareto front: " + " ".join(sel.notes))
    selected, label = select_study(sel.records, study)
    means = method_means(selected)
    objs = parse_objectives(objectives, [c for c in means.columns if means[c].notna().any()])
    table = pareto_table(means, objs)
    resampled = resample_metrics(selected, list(table.index))
    table["p_front"] = front_probability(table, objs, resampled)
    table = table.sort_values("on_front", ascending=False, kind="stable")
    where = escape(label) + (f" - setup {escape(sel.setup_label)}" if sel.setup_label else "")
    out = Table(title=f"Pareto front over {', '.join(map(str, objs))} - {where}")
    out.add_column("method")
    for o in objs:
        out.add_column(f"{o.metric} ({o.direction})", justify="right")
    out.add_column("on front")
    out.add_column("P(on front)", justify="right")
    reported = [o.asked for o in objs if o.asked and o.asked in means]
    for name in reported:
        out.add_column(f"test {name} (reported)", justify="right")
    for method, row in table.iterrows():
        out.add_row(escape(str(method)), *[_measure(row[o.metric]) for o in objs],
                    "yes" if row["on_front"] else f"no (dominated by {escape(str(row['dominated_by']))})",
                    _fmt(row["p_front"], ".2f"), *[_fmt(means.loc[method, name]) for name in reported])
    console.print(out)
    for o in objs:
        if o.asked:
            console.print(f"note: {o.asked} is read on validation ({o.metric}): a front is a choice, and the "
                          "test split only reports", highlight=False)
    console.print(f"note: P(on front) is the share of {RESAMPLES} paired bootstrap resamples of the validation "
                  "and OOD rows, every time, memory and speed drawn with its own noise, in which the method is on "
                  "the front (counts such as parameters and FLOPs stay fixed)" if resampled is not None else
                  "note: no per-row predictions stored: no P(on front)", highlight=False)
    if resampled is not None and resampled.timing is not None:
        print_drift(resampled.timing.lines())
    for note in sel.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    from peftbench.analysis.timing_trust import TIMING_FLAGS, timing_summary

    if any(o.metric in TIMING_FLAGS or o.metric.startswith("deployed_") for o in objs):
        for note in timing_summary(selected):
            console.print(f"note: {escape(note)}", highlight=False)
    dropped = [m for m in means.index if m not in table.index]
    if dropped:
        console.print(f"note: left out, an objective was not measured: {escape(', '.join(dropped))}",
                      highlight=False)


def report(db: str | None = DB_OPTION, output: Path | None = OUTPUT_OPT, study: str | None = StudyOption,
           radar_methods: str | None = RADAR_OPT, interactive: bool = INTERACTIVE_REPORT_OPT,
           setup: str | None = SETUP_OPT, model: str | None = MODEL_OPT, dataset: str | None = DATASET_OPT,
           include_collapsed: bool = COLLAPSED_OPT) -> None:
    """Write one self-contained HTML report (inline SVG plots) plus PNG copies of the plots."""
    from peftbench.report.html import write_report

    records, db_path = load_records(db)
    target = output or db_path.parent / "report.html"
    radar = [m.strip() for m in radar_methods.split(",") if m.strip()] if radar_methods else None
    written = write_report(records, db_path, target, study=study, radar_methods=radar, interactive=interactive,
                           setup=setup, model=model, dataset=dataset, include_collapsed=include_collapsed,
                           races=stored_races(db_path))
    console.print(f"wrote {escape(str(written.html))} and {written.png_count} PNG plots in "
                  f"{escape(str(written.png_dir))}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(recommend)
    app.command()(pareto)
    app.command()(report)
