"""Python API for scripts and notebooks: the same operations as the CLI, returning pandas DataFrames.

    import peftbench as pb
    df = pb.run(methods=["Full", "LoRA-r8"], train_size=500, db="my.db")
    pb.results("my.db")

It works from a plain script with no `if __name__ == "__main__"` guard, from stdin and in Jupyter: trial
processes never re-import the caller's `__main__` (see execute/isolation.py).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pandas as pd

from peftbench.config.spec import EMBEDDED, DataSpec, TrainSpec
from peftbench.store.db import Store, default_db_path
from peftbench.studies.definitions import StudyOptions
from peftbench.studies.options import RACE_KEYS, STUDY_KEYS, STUDY_OPTIONS, SWEEP_KEYS
from peftbench.studies.settings import study_options_from, study_specs


def _listing_study_options(func):
    """help() and editors show the study options by name (each defaults to None: not given)."""
    named = [inspect.Parameter(o.key, inspect.Parameter.KEYWORD_ONLY, default=None) for o in STUDY_OPTIONS]
    params = list(inspect.signature(func).parameters.values())
    func.__signature__ = inspect.signature(func).replace(parameters=[*params[:-1], *named, params[-1]])
    return func


@_listing_study_options
def study_options(*, train: TrainSpec | None = None, data: DataSpec | None = None, **options) -> StudyOptions:
    """Build StudyOptions from the CLI's study options under their config-file names (model=, dataset=,
    methods=[...], train_size=, epochs=, learning_rate=, preset=, task=, template=, ood_dataset=, no_ood=...;
    `peftbench run --help` describes each), through the same code as the CLI. Other keywords (latency_runs=,
    throughput_batches=, ...) go to TrainSpec; `train` is a base TrainSpec and `data` a DataSpec used as it
    is. preset="quick" is the CLI's --preset quick: smaller evaluation sets and fewer latency repeats;
    preset="decoder-quick" the decoder set's sizes (model: the embedded decoder unless given).
    task="generate" trains a causal LM to write the response (prompt_column/response_column, or template)."""
    given = {k: v for k, v in options.items() if k in STUDY_KEYS}
    extra = {k: v for k, v in options.items() if k not in STUDY_KEYS}
    return study_options_from(given, train=train, data=data, train_overrides=extra)


def _race(options: dict, study: str, tune: bool, force: bool):
    """Take the race's keywords out of `options` (they are not study options): RaceSettings or None."""
    from peftbench.studies.race import race_settings

    values = {k: options.pop(k) for k in RACE_KEYS & set(options)}
    return race_settings({**values, "seeds": options.get("seeds"), "force": force}, studies=[study], tune=tune)


def _with_race_seeds(opts: StudyOptions, race) -> StudyOptions:
    return opts if race is None else dataclasses.replace(opts, seeds=race.rule.max_seeds)


def _run(specs, db, executor, force, retry_failed, retries, track=None, tracking_uri=None, tune: bool = False,
         tune_lr_factors: list[float] | None = None, budget=None, max_memory=None,
         race=None) -> pd.DataFrame:
    from peftbench.store.tracking import make_trackers
    from peftbench.studies.forecast import Planner
    from peftbench.studies.runner import run_trials

    if race is not None:
        from peftbench.studies.race import refuse_limits

        refuse_limits(budget, max_memory)
    planner = Planner(executor, budget, max_memory)  # a bad value raises before anything
    trackers = make_trackers(track, tracking_uri)
    db = Path(db) if db else default_db_path()
    if race is not None:
        return _run_race(specs, db, executor, retry_failed, retries, trackers, race, planner)
    if tune:
        from peftbench.studies.tuning import parse_lr_factors, prepare

        specs, executor, tuning_line = prepare(specs, db, executor, parse_lr_factors(tune_lr_factors))
        planner.executor = executor
        print(tuning_line)
    elif tune_lr_factors is not None:
        from peftbench.errors import PeftbenchError

        raise PeftbenchError("tune_lr_factors needs tune=True")
    run_trials(specs, db, executor, force=force, retry_failed=retry_failed, retries=retries,
               trackers=trackers, planner=planner)
    ids = {s.trial_id for s in specs}
    with Store(db, create=False) as store:
        df = store.records(include_failed=True)
    return df[df["trial_id"].isin(ids)].reset_index(drop=True)


def _run_race(specs, db: Path, executor, retry_failed, retries, trackers, race, planner) -> pd.DataFrame:
    """Race `specs` (seeds 0..max_seeds-1 of every configuration); the rows of the trials the race ran, with
    its answer in `.attrs["race"]` (studies.race.RaceAnswer) and printed."""
    from peftbench.studies.race import run_race

    if executor is None:
        from peftbench.execute.local import LocalExecutor

        executor = LocalExecutor()
    planner.executor = executor
    answer = run_race(specs, db, executor, race, trackers=trackers, retry_failed=retry_failed, retries=retries,
                      planner=planner)
    for line in answer.lines():
        print(line)
    with Store(db, create=False) as store:
        df = store.records(include_failed=True)
    df = df[df["trial_id"].isin(answer.trial_ids)].reset_index(drop=True)
    df.attrs["race"] = answer
    return df


def run(*, db: str | Path | None = None, executor=None, force: bool = False, retry_failed: bool = False,
        retries: int = 0, track: str | None = None, tracking_uri: str | None = None, tune: bool = False,
        tune_lr_factors: list[float] | None = None, budget: str | float | None = None,
        max_memory: str | float | None = None, **options) -> pd.DataFrame:
    """The tradeoff study (seed presets by default). Returns one row per trial of this study.
    track="mlflow" logs each trial as it finishes (tracking_uri: default ./mlruns).

    The study is planned first (`peftbench plan`): the predicted training time is printed, each record
    stores its prediction (predicted_*) beside what it measured. budget="20m" (or seconds) stops a study
    predicted to train longer before it starts (PeftbenchError: by how much, what would fit);
    max_memory="4GB" (or GiB as a number) leaves out the methods predicted to need more training memory.

    tune=True: each method's learning rate is tuned on validation (see `tuning`); every candidate is a
    row (status ok or pruned, with `tune_group`); `tuning_choices(db)` says which one was chosen.

    race=True (with scenario= or weights=, confidence=0.9, max_seeds=5): race the configurations, spending
    seeds only where the ranking is still open (`peftbench run --race`); the rows are the trials the race
    ran, its answer is printed and kept in `.attrs["race"]`, its rounds in `races(db)`."""
    from peftbench.studies.definitions import tradeoff

    race = _race(options, "tradeoff", tune, force)
    specs = tradeoff(_with_race_seeds(study_options(**options), race))
    return _run(specs, db, executor, force, retry_failed, retries, track, tracking_uri, tune, tune_lr_factors,
                budget, max_memory, race)


def study(name: str, *, db: str | Path | None = None, executor=None, force: bool = False,
          sizes: list[int] | None = None, ranks: list[int] | None = None, track: str | None = None,
          tracking_uri: str | None = None, tune: bool = False, tune_lr_factors: list[float] | None = None,
          budget: str | float | None = None, max_memory: str | float | None = None,
          **options) -> pd.DataFrame:
    """A named study: 'tradeoff', 'data-efficiency' or 'rank-sweep'. As in the CLI, the sweeps train 3
    epochs (rank sweep: on 500 examples) unless epochs= (train_size=) says otherwise; the rank sweep also
    takes alpha_ratio= and targets=; tune=True, budget= and max_memory= as in `run`, and race=True (a race:
    tradeoff or rank-sweep)."""
    from peftbench.errors import PeftbenchError
    from peftbench.studies.definitions import STUDIES

    sweep = {k: options.pop(k) for k in SWEEP_KEYS & set(options)}
    if name not in STUDIES:
        raise PeftbenchError(f"unknown study {name!r} (choose from {', '.join(STUDIES)})")
    race = _race(options, name, tune, force)
    opts = _with_race_seeds(study_options(**options), race)
    specs = study_specs(name, opts, {**options, **sweep, "sizes": sizes, "ranks": ranks})
    return _run(specs, db, executor, force, False, 0, track, tracking_uri, tune, tune_lr_factors, budget,
                max_memory, race)


def races(db: str | Path | None = None, study: str | None = None, race_id: str | None = None) -> pd.DataFrame:
    """Every race's decisions in a store: one row per (race, round, configuration) with its seeds, score,
    P(best), share of resamples at least as high as the leader, and status (in, raced out, ...), beside the
    round's leader, tied set and stop reason (empty when the store holds no race)."""
    from peftbench.store.races import races_frame

    with Store(Path(db) if db else default_db_path(), create=False) as store:
        frame = races_frame(store.conn, study)
    return frame[frame["race_id"] == race_id].reset_index(drop=True) if race_id else frame


def tuning_choices(db: str | Path | None = None, study: str | None = None) -> pd.DataFrame:
    """Every tuning candidate (ok, pruned or failed) with `chosen`: per search, the completed candidate with
    the best validation accuracy."""
    from peftbench.studies.tuning import candidates_frame

    return candidates_frame(results(db, study, include_failed=True))


def results(db: str | Path | None = None, study: str | None = None, include_failed: bool = False) -> pd.DataFrame:
    """Every stored record (one row per trial). `method` is the configuration's label (the name plus what
    sets it apart, config/identity.py), `method_name` the name, `config` the configuration's key."""
    with Store(Path(db) if db else default_db_path(), create=False) as store:
        return store.records(study, include_failed=include_failed)


def summary(db: str | Path | None = None, study: str | None = None) -> pd.DataFrame:
    """One row per configuration (a tuned choice is `<method> (tuned)`, never pooled with the untuned
    one) with mean / std / 95% CI over seeds and a paired test against Full."""
    from peftbench.report.tables import summary_frame

    return summary_frame(results(db, study))


def summary_table(db: str | Path | None = None, study: str | None = None) -> pd.DataFrame:
    """The per-configuration table `export --summary` writes: per study and setup, each figure of the
    results table with `<m>_ci_low`, `<m>_ci_high` and `<m>_ci_method` (how the interval was computed:
    "bootstrap over test rows (1 seed: row noise only, ...)", "... and spread over seeds (3 seeds)")."""
    from peftbench.report.summary_table import summary_table as table

    return table(results(db, study))


def export(output: str | Path | None = None, *, fmt: str = "json", db: str | Path | None = None,
           study: str | None = None, include_failed: bool = False, summary: bool = False) -> None:
    """`peftbench export` from Python: every record as stored to `output` (json, csv or parquet; json/csv
    without output go to stdout); summary=True also writes `summary_table` to FILE.summary.EXT beside it
    (stdout: the summary alone). Nothing is written when anything fails. MLflow: `peftbench export
    --format mlflow`."""
    from peftbench.errors import PeftbenchError
    from peftbench.store.export import export_records

    if fmt not in ("json", "csv", "parquet"):
        raise PeftbenchError(f"unknown export format {fmt!r} (choose from json, csv, parquet)")
    with Store(Path(db) if db else default_db_path(), create=False) as store:
        records = store.records(study, include_failed=include_failed, roles=False)
    table = summary_table(db, study) if summary else None
    export_records(records, fmt, None if output is None else Path(output), table)


def data_efficiency(db: str | Path | None = None) -> pd.DataFrame:
    """Per method, from the data-efficiency study: accuracy at the smallest size and normalised AUC."""
    from peftbench.analysis.curves import DATA_EFFICIENCY_STUDY, data_efficiency_summary, study_records

    return data_efficiency_summary(study_records(results(db), DATA_EFFICIENCY_STUDY))


def rank_choice(db: str | Path | None = None):
    """From the rank sweep: the smallest sufficient LoRA rank (a RankChoice, None if the sweep was not run)."""
    from peftbench.analysis.curves import RANK_SWEEP_STUDY, smallest_sufficient_rank, study_records

    return smallest_sufficient_rank(study_records(results(db), RANK_SWEEP_STUDY))


def parameters(model: str = EMBEDDED, methods: list[str] | None = None, num_labels: int = 2) -> pd.DataFrame:
    """Each method's parameter accounting on a model, without training."""
    from peftbench.report.params_table import parameter_rows

    return pd.DataFrame(parameter_rows(model, methods, num_labels))
