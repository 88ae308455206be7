"""Run a list of trials against a store: skip finished ones, prepare data once, store every outcome.

This is the one code path every study uses. The driver writes the store; trials run in executors.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peftbench.config.spec import TrialSpec
from peftbench.errors import PeftbenchError
from peftbench.execute.base import Event, TrialOutcome
from peftbench.record.schema import checked
from peftbench.store.db import Store
from peftbench.studies.tuning import tune_fields
from peftbench.trial.record import failure_record


@dataclass
class RunSummary:
    planned: int
    skipped: int
    ok: int
    failed: int
    cancelled: int
    pruned: int = 0  # --tune candidates stopped early by the search (finished: never re-run)


def select_to_run(specs: list[TrialSpec], statuses: dict[str, str], force: bool, retry_failed: bool) -> list[TrialSpec]:
    """Finished trials (ok, and pruned tuning candidates) are skipped unless forced; failed ones only rerun
    when asked."""
    out = []
    for s in specs:
        st = statuses.get(s.trial_id)
        if force or st in (None, "running", "cancelled") or (st == "failed" and retry_failed):
            out.append(s)
    return out


class _Interrupts:
    """First Ctrl-C: cancel running trials (they are stored as cancelled) and stop. Second: exit now."""

    def __init__(self, executor):
        self.executor = executor
        self.count = 0
        self.previous = None

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.count += 1
        if self.count >= 2:
            os._exit(130)
        print("\nInterrupted: cancelling running trials (Ctrl-C again to stop at once)", file=sys.stderr)
        self.executor.cancel()

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)


def run_trials(specs: list[TrialSpec], db: str | Path, executor=None, *, force: bool = False,
               retry_failed: bool = False, retries: int = 0, display=None, trackers=None,
               side_by_side: bool = True, planner=None, prepared: dict | None = None,
               data_cache: dict | None = None) -> RunSummary:
    """`trackers`: objects whose log(spec, record, status) is called after each stored outcome
    (peftbench.tracking); a tracker that fails warns once and the study goes on. `side_by_side`: after the
    trials, time every deployed model of each setup interleaved (studies/side_by_side.py). `planner`: called
    with the trials to run and their prepared data before the first one (studies/forecast.Planner); its
    predictions are stored in each trial's record beside what it measured, the trials it leaves out are not
    run, and its error (a short budget) stops the study before any trial. `prepared`: (model, data) -> data
    already prepared, used as it is. `data_cache`: a dict kept by a caller that runs several batches of
    one study (a race's rounds), so each setup's data is prepared once."""
    if not specs:
        raise PeftbenchError("nothing to run: the study has no trials")
    if retries < 0:
        raise PeftbenchError(f"retries must be >= 0, got {retries}")
    ids = [s.trial_id for s in specs]
    if len(set(ids)) != len(ids):
        raise PeftbenchError("the study lists the same trial twice (same method, size and seed)")
    if executor is None:
        from peftbench.execute.local import LocalExecutor

        executor = LocalExecutor()
    store = Store(db)
    try:
        summary, interrupted = _run_with_store(store, specs, executor, force, retry_failed, retries, display,
                                               _Trackers(trackers or []), side_by_side, planner,
                                               dict(prepared or {}), data_cache)
    except BaseException:
        store.discard_if_unused()  # a study that could not start leaves no store behind
        raise
    store.close()
    if interrupted:
        raise KeyboardInterrupt  # the caller (the CLI) exits non-zero; cancelled trials are stored
    return summary


def _run_with_store(store: Store, specs: list[TrialSpec], executor, force: bool, retry_failed: bool,
                    retries: int, display, trackers: _Trackers, side_by_side: bool = True,
                    planner=None, ready: dict | None = None,
                    data_cache: dict | None = None) -> tuple[RunSummary, bool]:
    ids = [s.trial_id for s in specs]
    store.lock_for_writing()
    statuses = store.statuses(ids)
    to_run = select_to_run(specs, statuses, force, retry_failed)
    groups: dict[Any, list[TrialSpec]] = defaultdict(list)
    for s in to_run:
        groups[(s.model, s.data)].append(s)
    prepared = _prepare_groups(store, groups, dict(ready or {}), data_cache)
    predictions: dict[str, dict] = {}
    if planner is not None and to_run:  # plans first: before the first trial, after every check above
        forecast = planner(to_run, prepared)
        predictions = forecast.predictions
        to_run = [s for s in to_run if s.trial_id not in forecast.left_out]
        specs = [s for s in specs if s.trial_id not in forecast.left_out]
        for key in list(groups):
            groups[key] = [s for s in groups[key] if s.trial_id not in forecast.left_out]
    replaced = sum(statuses.get(s.trial_id) in ("ok", "pruned") for s in to_run)
    if replaced:
        print(f"--force: re-running {replaced} finished trial(s); their earlier records are kept in the "
              f"store's trial_history table", file=sys.stderr)
    summary = RunSummary(planned=len(specs), skipped=len(specs) - len(to_run), ok=0, failed=0, cancelled=0)
    if display is not None:
        display.begin(len(specs), summary.skipped)
    with _Interrupts(executor) as interrupts:
        for (model, data_spec), group in groups.items():
            if interrupts.count or not group:
                continue
            data = prepared[(model, data_spec)]
            attempt, queue = 0, group
            while queue and not interrupts.count:
                failed_now = []
                for outcome in executor.run(queue, data, _sink(display), store_start(store)):
                    trackers.log(outcome.spec, _store(store, outcome, predictions.get(outcome.spec.trial_id)),
                                 outcome.status)
                    setattr(summary, outcome.status, getattr(summary, outcome.status) + 1)
                    if outcome.status == "failed":
                        failed_now.append(outcome.spec)
                attempt += 1
                if attempt > retries:
                    break
                summary.failed -= len(failed_now)  # retried: counted again by the next attempt
                queue = failed_now
    if display is not None:
        display.end(summary)
    if side_by_side and not interrupts.count:
        _side_by_side(store, specs, prepared)
    return summary, bool(interrupts.count)


def _prepare_groups(store: Store, groups: dict, ready: dict, cache: dict | None = None) -> dict:
    """Each setup's data, prepared once (or as given, or from a race's `cache` of earlier rounds), its notes
    printed the first time; a seed the store already holds for a setup under another trial id is refused
    here, before anything runs."""
    prepared = {}
    for (model, data_spec), group in groups.items():
        key = (model, data_spec, max(s.train.train_size for s in group))
        data = ready.get((model, data_spec))
        cached = data is None and cache is not None and key in cache
        if cached:
            data = cache[key]
        elif data is None:
            data = prepare_study_data(data_spec, model, key[2])
        if cache is not None:
            cache[key] = data
        prepared[(model, data_spec)] = data
        for note in () if cached else data.notes:
            print(f"data: {note}", file=sys.stderr)
        store.refuse_repeated_seeds([(s.to_dict(), s.trial_id) for s in group],
                                    data.provenance.get("split_hash"))
    return prepared


def _side_by_side(store: Store, specs: list[TrialSpec], prepared: dict) -> None:
    """One side-by-side inference pass per setup whose finished trials no single pass covers yet (data is
    prepared again only for a setup none of whose trials ran now)."""
    from peftbench.studies.side_by_side import after_trials

    setups: dict[Any, list[TrialSpec]] = defaultdict(list)
    for s in specs:
        setups[(s.model, s.data)].append(s)
    for (model, data_spec), group in setups.items():
        if (model, data_spec) in prepared:
            data = prepared[(model, data_spec)]
        else:  # called only when a pass is needed
            def data(d=data_spec, m=model, g=group):
                return prepare_study_data(d, m, max(s.train.train_size for s in g))
        after_trials(store, group, data)


def prepare_study_data(spec, model: str, max_train_size: int):
    """Tokenize a setup's data once: prompt/response sets for --task generate, else labelled texts."""
    from peftbench.config.spec import EMBEDDED_DECODER

    if model == EMBEDDED_DECODER:
        from peftbench.models.embedded_decoder import converted_path

        if converted_path() is None:
            print("converting the embedded decoder (SmolLM2-135M-Instruct GGUF) to a cached folder, once "
                  "(about 30 s)", file=sys.stderr)
    from peftbench.tasks import task_of

    return task_of(spec).prepare_data(spec, model, max_train_size)


def store_start(store: Store):
    return lambda spec: store.mark_running(spec.to_dict(), spec.trial_id)


def _sink(display):
    if display is None:
        return lambda event: None
    return display.on_event


def _store(store: Store, outcome: TrialOutcome, prediction: dict | None = None) -> dict[str, Any]:
    """Store the outcome (a pruned tuning candidate keeps its validation figures) with the plan's prediction
    beside it; returns the record as stored."""
    tune = {**tune_fields(outcome.spec), **(prediction or {})}
    if outcome.status in ("ok", "pruned"):
        # every field declared (record/fields.py): an undeclared one stops here, not in a reader later
        record = checked({**outcome.record, **tune, "status": outcome.status})
        store.finish(outcome.spec.trial_id, outcome.status, record)
    else:
        record = {**failure_record(outcome.spec, outcome.status, outcome.error or ""), **tune}
        store.finish(outcome.spec.trial_id, outcome.status, record, outcome.error)
    return record


class _Trackers:
    """Calls every tracker after a stored outcome. The store is the record of truth: a tracker that
    fails is reported once, in one line, and skipped from then on (export can log the store later)."""

    def __init__(self, trackers: list):
        self.trackers = list(trackers)

    def log(self, spec: TrialSpec, record: dict[str, Any], status: str) -> None:
        for tracker in list(self.trackers):
            try:
                tracker.log(spec, record, status)
            except Exception as exc:  # noqa: BLE001 - a tracker must never lose a study
                self.trackers.remove(tracker)
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                name = getattr(tracker, "name", type(tracker).__name__)
                print(f"warning: {name} tracking stopped ({type(exc).__name__}: {first}); the study goes on "
                      f"and its store keeps every trial (log it later with peftbench export --format {name})",
                      file=sys.stderr)


__all__ = ["Event", "RunSummary", "run_trials", "select_to_run"]
