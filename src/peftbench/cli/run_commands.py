"""`peftbench run` and `peftbench study`: build a study from the shared options, run it, print its tables."""

from __future__ import annotations

import dataclasses
from typing import Any

import typer

from peftbench.cli.execution import execute
from peftbench.cli.results_view import print_answer, print_results
from peftbench.cli.signature import with_options
from peftbench.errors import PeftbenchError
from peftbench.studies.options import EXECUTION_OPTIONS, RACE_OPTIONS, STUDY_OPTIONS, SWEEP_OPTIONS
from peftbench.studies.race import race_settings
from peftbench.studies.settings import load_config, study_options_from, study_specs, tune_options


@with_options(STUDY_OPTIONS, EXECUTION_OPTIONS, RACE_OPTIONS)
def run(options: dict[str, Any]) -> None:
    """Run the tradeoff study (every seed method by default) and print the results table."""
    from peftbench.studies.definitions import tradeoff

    cfg = load_config(options["config"])
    tuning = tune_options(cfg, options["tune"], options["tune_lr_factors"])
    race = race_settings(options, cfg, studies=("tradeoff",), tune=tuning[0])
    opts = study_options_from(options, cfg)
    if race is not None:  # every seed the race may ask for; it runs them round by round
        opts = dataclasses.replace(opts, seeds=race.rule.max_seeds)
    db_path, answer = execute(tradeoff(opts), options, cfg, tuning, race)
    print_results(db_path, "tradeoff")
    print_answer(answer)


@with_options(STUDY_OPTIONS, EXECUTION_OPTIONS, SWEEP_OPTIONS, RACE_OPTIONS)
def study(name: str = typer.Argument(..., help="tradeoff | data-efficiency | rank-sweep | all"),
          *, options: dict[str, Any]) -> None:
    """Run a named study; re-running resumes where it stopped."""
    from peftbench.studies.definitions import STUDIES

    if name not in (*STUDIES, "all"):
        raise PeftbenchError(f"unknown study {name!r} (choose from {', '.join(STUDIES)}, all)")
    cfg = load_config(options["config"])
    tuning = tune_options(cfg, options["tune"], options["tune_lr_factors"])
    names = STUDIES if name == "all" else (name,)
    race = race_settings(options, cfg, studies=[name], tune=tuning[0])
    opts = study_options_from(options, cfg)
    if race is not None:
        opts = dataclasses.replace(opts, seeds=race.rule.max_seeds)
    specs = [spec for n in names for spec in study_specs(n, opts, options, cfg)]
    db_path, answer = execute(specs, options, cfg, tuning, race)
    for n in names:
        print_results(db_path, n)
    print_answer(answer)


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(study)
