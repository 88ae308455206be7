"""Running a study's trials from the command line: the executor, trackers and tuning its options ask for,
with progress on stderr."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from peftbench.cli.console import err_console
from peftbench.errors import PeftbenchError
from peftbench.studies.settings import pick


def execute(specs: list, options: Mapping[str, Any], cfg: Mapping, tune: tuple, race=None) -> tuple[Path, Any]:
    """Run `specs` as the execution options (cli/options.py) and config file say, or race them (`race`: a
    studies.race.RaceSettings); returns the store's path and the race's answer (None without a race)."""
    from peftbench.cli.display import StudyDisplay
    from peftbench.execute import make_executor
    from peftbench.store.db import default_db_path
    from peftbench.store.tracking import make_trackers
    from peftbench.studies.forecast import Planner
    from peftbench.studies.runner import run_trials

    workers = pick(options["workers"], cfg, "workers", None)
    trial_timeout = pick(options["trial_timeout"], cfg, "trial_timeout", None)
    if workers is not None and workers < 1:
        raise PeftbenchError(f"workers must be at least 1, got {workers}")
    if trial_timeout is not None and trial_timeout <= 0:
        raise PeftbenchError(f"trial timeout must be positive, got {trial_timeout}")
    # a bad --budget or --max-memory: one line, before anything
    if race is not None:
        from peftbench.studies.race import refuse_limits

        refuse_limits(pick(options.get("budget"), cfg, "budget", None),
                      pick(options.get("max_memory"), cfg, "max_memory", None))
    planner = Planner(None, pick(options.get("budget"), cfg, "budget", None),
                      pick(options.get("max_memory"), cfg, "max_memory", None),
                      say=lambda line: err_console.print(line, highlight=False, markup=False))
    # before any store is written: a bad tracker is one line
    trackers = make_trackers(options["track"], options["tracking_uri"])
    executor = make_executor(options["backend"], workers=workers, trial_timeout=trial_timeout,
                             address=options["address"], gpus_per_trial=options["gpus_per_trial"],
                             cpus_per_trial=options["cpus_per_trial"])
    db = pick(options["db"], cfg, "db", None)
    db_path = Path(db) if db else default_db_path()
    if tune[0]:
        from peftbench.studies.tuning import prepare

        specs, executor, budget_line = prepare(specs, db_path, executor, tune[1])
        err_console.print(budget_line, highlight=False, markup=False)
    planner.executor = executor
    retries = pick(options["retries"], cfg, "retries", 0)
    side_by_side = not options.get("no_side_by_side")
    if race is not None:
        from peftbench.studies.race import run_race

        answer = run_race(specs, db_path, executor, race, say=_say, display=StudyDisplay(err_console),
                          trackers=trackers, side_by_side=side_by_side, retry_failed=options["retry_failed"],
                          retries=retries, planner=planner)
        return db_path, answer
    run_trials(specs, db_path, executor, force=options["force"], retry_failed=options["retry_failed"],
               retries=retries, display=StudyDisplay(err_console), trackers=trackers, side_by_side=side_by_side,
               planner=planner)
    return db_path, None


def _say(line: str) -> None:
    """A race's line per round, on stderr beside the progress display."""
    err_console.print(line, highlight=False, markup=False)
