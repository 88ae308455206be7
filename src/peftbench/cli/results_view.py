"""The results tables of a store as `run`, `study` and `results` print them, with what each study answers."""

from __future__ import annotations

from pathlib import Path

from peftbench.cli.console import console, err_console


def print_results(db_path: Path, study: str | None) -> None:
    """One table per study and setup (never averaged across setups), from the reportable records only."""
    from peftbench.report.tables import by_setup, results_table
    from peftbench.stats.summary import drop_repeated_seeds, reportable
    from peftbench.store.db import Store

    with Store(db_path, create=False) as store:
        records = store.records(study)
        if store.migrated_from:
            err_console.print(f"store {db_path} upgraded from schema {store.migrated_from} "
                              f"(every trial kept)")
    records = reportable(records)
    if records.empty:
        console.print("no finished trials")
        return
    records, repeated = drop_repeated_seeds(records)
    for _, r in repeated.iterrows():
        console.print(f"note: trial {r['trial_id']} repeats {r['method']} seed {r['seed']} of study "
                      f"{r['study']} in the same setup; only the earlier trial is counted", highlight=False)
    for name, label, grp in by_setup(records):
        console.print(results_table(grp, title=f"peftbench: {name}" + (f" · {label}" if label else "")))
        _print_skipped_perturbations(grp)
        _print_study_answer(name, grp)
        _print_plan_checks(grp)
    _print_tuning(db_path, study)
    _print_races(db_path, study)


def print_answer(answer) -> None:
    """A race's answer (studies.race.RaceAnswer), after the tables; nothing without a race."""
    if answer is None:
        return
    for line in answer.lines():
        console.print(line, highlight=False, markup=False)


def _print_races(db_path: Path, study: str | None) -> None:
    """Each race run on the store: its rounds and where each configuration left it (store/races.py)."""
    from peftbench.cli.race_view import race_tables
    from peftbench.store.db import Store
    from peftbench.store.races import races_frame

    with Store(db_path, create=False) as store:
        frame = races_frame(store.conn, study)
    for table in race_tables(frame):
        console.print(table)


def _print_skipped_perturbations(records) -> None:
    """Which perturbations the robustness drop leaves out, and why (e.g. case changes on an uncased model)."""
    skipped: dict[str, str] = {}
    for value in records.get("perturbations_skipped", []):
        if isinstance(value, dict):
            skipped.update(value)
    if skipped:
        console.print("robust drop leaves out: " + "; ".join(f"{k} ({why})" for k, why in skipped.items()),
                      highlight=False, markup=False)


def _print_plan_checks(records) -> None:
    """What the plan predicted for each trial before it ran, beside what it measured
    (report/plan_checks.py)."""
    from peftbench.report.plan_checks import plan_check_table

    table = plan_check_table(records)
    if table is not None:
        console.print(table)


def _print_tuning(db_path: Path, study: str | None) -> None:
    """The tuning candidates of a store (every status) and the one chosen per search, when there are any."""
    from peftbench.store.db import Store
    from peftbench.studies.tuning import tuning_table

    with Store(db_path, create=False) as store:
        table = tuning_table(store.records(study, include_failed=True))
    if table is not None:
        console.print(table)


def _print_study_answer(study: str, records) -> None:
    """What a sweep study answers, under its table: AUC per method, or the smallest sufficient rank."""
    from peftbench.analysis.recommend import data_advice, rank_advice
    from peftbench.report.tables import data_efficiency_table

    if study == "data-efficiency":
        table = data_efficiency_table(records)
        if table is not None:
            console.print(table)
        advice = data_advice(records)
    elif study == "rank-sweep":
        advice = rank_advice(records)
    else:
        return
    if advice:
        console.print(advice, highlight=False)
