"""--tune: every method gets the same fair search over its family's learning rates, chosen on validation.

Each method becomes one candidate TrialSpec per learning rate (its family's `lr_candidates()`, the default
first, or `lr_factors` x the default). Candidates are ordinary trials: stored, resumable, exported. The
search is Optuna's, not ours: one Optuna study per (study, setup, method, seed) in a journal file beside
the store, pruned by `optuna.pruners.SuccessiveHalvingPruner` (asynchronous successive halving). Each
candidate reports validation accuracy at 1/3 of its steps and at the end (tuning_child.py); a pruned one
stops and is stored as "pruned" with its validation figures and no test figure. Every candidate that
completes ran the full measurement once, so the chosen one (the completed candidate with the best
validation accuracy) needs no re-run, and the test split never takes part in a choice.

Under Ray the workers cannot reach the driver's journal file, so candidates run to the end without
pruning (same choice, on validation; about n_candidates x the cost). The long-term answer there is Ray
Tune's ASHA scheduler, with the trial reporting through `ray.train.report`; not built yet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

from peftbench.config.spec import TrialSpec, TuneLink
from peftbench.errors import PeftbenchError

REDUCTION_FACTOR = 3  # successive halving keeps the best third: the first rung is at 1/3 of the steps
RUNG_VAL_ROWS = 500  # validation rows scored at the first rung (a full pass is kept for the last rung)


def parse_lr_factors(values: list[Any] | tuple[Any, ...] | None) -> tuple[float, ...] | None:
    """--tune-lr-factors: multiples of each family's default learning rate, e.g. 1,0.333,3."""
    if values is None:
        return None
    if not values:
        raise PeftbenchError("--tune-lr-factors names no factor (give multiples of each method's default "
                             "learning rate, e.g. 1,0.333,3, or leave it out for each family's own "
                             "candidates)")
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise PeftbenchError(f"--tune-lr-factors must be numbers separated by commas, got {v!r}") \
                from None
        if not (math.isfinite(f) and f > 0):
            raise PeftbenchError(f"--tune-lr-factors must be positive numbers, got {v!r}")
        out.append(f)
    if len(set(out)) != len(out):
        raise PeftbenchError("--tune-lr-factors lists a factor twice")
    return tuple(out)


def candidate_lrs(default_lr: float, family_candidates: list[float],
                  lr_factors: tuple[float, ...] | None) -> list[float]:
    """The learning rates tried, the family default first when it is among them (it is the likeliest winner,
    so successive halving stops the others at the first rung)."""
    if lr_factors is None:
        return list(family_candidates)
    lrs = [default_lr * f for f in lr_factors]
    return sorted(lrs, key=lambda lr: lr != default_lr)  # stable: the rest keep the order given


def search_name(spec: TrialSpec, group: str) -> str:
    """The Optuna study of one candidate group: same study, setup (model, data, training) and seed."""
    setup = {"model": spec.model, "data": dataclasses.asdict(spec.data),
             "train": dataclasses.asdict(spec.train), "eval_size": spec.eval_size}
    digest = hashlib.sha256(json.dumps(setup, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{spec.study}|{group}|seed={spec.seed}|setup={digest}"


def budget_text(n_lrs: str, prunes: bool, val_rows: int) -> str:
    if not prunes:
        return f"{n_lrs} learning rates per method, no pruning (every candidate runs to the end)"
    return (f"{n_lrs} learning rates per method, successive halving at 1/{REDUCTION_FACTOR} of the steps, "
            f"reduction factor {REDUCTION_FACTOR}, validation subset {val_rows} rows")


def candidate_specs(specs: list[TrialSpec], lr_factors: tuple[float, ...] | None = None,
                    journal: Path | None = None) -> list[TrialSpec]:
    """Each spec -> one candidate per learning rate. Candidates are ordered round-robin (every method's
    default first, then every method's second candidate, ...), so several workers start with the defaults
    and an interrupted search has the untuned study complete. `journal` None: no pruning."""
    from peftbench.methods import family
    from peftbench.tasks import model_is_decoder, task_of

    per_method: list[list[TrialSpec]] = []
    counts = set()
    for spec in specs:
        if spec.tune_group is not None:
            raise PeftbenchError(f"{spec.method.name} is already a tuning candidate")
        if not task_of(spec.data).can_tune:
            raise PeftbenchError(f"--tune is not available for --task {spec.data.task} yet: its candidates "
                                 f"would be chosen by a figure the search does not score; set :lr=")
        fam = family(spec.method.family)
        decoder = model_is_decoder(spec.model)
        default_lr = fam.default_lr_for(decoder)
        if spec.method.learning_rate != default_lr:
            raise PeftbenchError(f"--tune searches the learning rate itself, but {spec.method.name} sets one "
                                 f"(drop --lr and :lr= from the methods)")
        lrs = candidate_lrs(default_lr, fam.lr_candidates(decoder), lr_factors)
        counts.add(len(lrs))
        cands = []
        for lr in lrs:
            name = spec.method.name if lr == default_lr else f"{spec.method.name}:lr={lr:g}"
            method = dataclasses.replace(spec.method, name=name, learning_rate=lr,
                                         head_learning_rate=_head_lr(spec.method, lr))
            cands.append(dataclasses.replace(spec, method=method, tune_group=spec.method.name))
        if len({c.method.name for c in cands}) != len(cands):
            names = ", ".join(c.method.name for c in cands)
            raise PeftbenchError(f"two learning rates tried for {spec.method.name} print the same ({names}); "
                                 f"space the factors further apart")
        per_method.append(cands)
    n_lrs = str(counts.pop()) if len(counts) == 1 else f"{min(counts)}-{max(counts)}"
    out = []
    for k in range(max(len(c) for c in per_method)):
        for cands in per_method:
            if k < len(cands):
                c = cands[k]
                val_rows = min(RUNG_VAL_ROWS, c.data.validation_size)
                link = TuneLink(study_name=search_name(c, c.tune_group),
                                storage=str(journal) if journal else None,
                                budget=budget_text(n_lrs, journal is not None, val_rows),
                                reduction_factor=REDUCTION_FACTOR, rung_val_rows=val_rows)
                out.append(dataclasses.replace(c, tune=link))
    return out


def _head_lr(method, lr: float) -> float | None:
    """The head's rate follows the candidate's (capped, as parse_method does) unless the user set it."""
    from peftbench.methods import head_lr_for

    base = method.head_learning_rate
    if base is None:  # no rate of its own: the head trains at the candidate's rate
        return None
    default = head_lr_for(method.family, method.learning_rate)
    return head_lr_for(method.family, lr) if base == default else base


def journal_path(db: str | Path) -> Path:
    """The Optuna journal of a store's searches: beside the store, named after it."""
    db = Path(db)
    return db.with_name(db.name + ".optuna-journal")


def prunes_with(executor) -> bool:
    """Only trials on this machine can reach the journal file (Ray workers may run anywhere)."""
    from peftbench.execute.local import LocalExecutor

    return executor is None or isinstance(executor, LocalExecutor)


def prepare(specs: list[TrialSpec], db: str | Path, executor, lr_factors: tuple[float, ...] | None
            ) -> tuple[list[TrialSpec], Any, str]:
    """The candidates, the executor to run them with, and the budget line to print before the run."""
    if executor is None:
        from peftbench.execute.local import LocalExecutor

        executor = LocalExecutor()
    prunes = prunes_with(executor)
    cands = candidate_specs(specs, lr_factors, journal_path(db) if prunes else None)
    line = f"tuning: {cands[0].tune.budget}" if cands else "tuning: nothing to tune"
    per_method = len(cands) // max(1, len(specs))
    line += f"; the same for every method ({len(specs)} x {per_method} = {len(cands)} trials)"
    if lr_factors is None:
        line += "; learning rates: each family's default, default/3 and default x 3 (`peftbench methods`)"
    else:
        line += f"; learning rates: {', '.join(f'{f:g}' for f in lr_factors)} x each family's default"
    if not prunes:
        line += ("\nnote: the Ray backend cannot prune (workers cannot reach the driver's Optuna journal): "
                 "every candidate runs to the end and the choice is still made on validation")
    return cands, (TuningExecutor(executor, cands) if prunes else executor), line


def tune_fields(spec: TrialSpec) -> dict[str, Any]:
    """What every candidate's record carries (ok, pruned or failed); nothing for other trials."""
    if spec.tune_group is None:
        return {}
    link = spec.tune
    return {"tune_group": spec.tune_group, "tune_budget": link.budget if link else None,
            "tune_search": link.study_name if link else None}


class TuningExecutor:
    """Wraps the local executor: makes each group's Optuna study before its candidates start, turns a
    candidate's "pruned" record into a pruned outcome, and tells Optuna every result (pruned, completed
    with its validation accuracy, or failed), so the search state matches the store."""

    def __init__(self, inner, candidates: list[TrialSpec]):
        self.inner = inner
        self.group_sizes = Counter(c.tune.study_name for c in candidates if c.tune is not None)

    def cancel(self) -> None:
        self.inner.cancel()

    def __getattr__(self, name: str):  # workers, threads, ...: the wrapped executor's
        return getattr(self.inner, name)

    def run(self, specs: list[TrialSpec], data, on_event: Callable, on_start: Callable) -> Iterator:
        from peftbench.execute.base import TrialOutcome

        storage = self._open([s for s in specs if s.tune is not None and s.tune.storage])
        for outcome in self.inner.run(specs, data, on_event, on_start):
            if outcome.status == "ok" and outcome.record.get("status") == "pruned":
                outcome = TrialOutcome(outcome.spec, "pruned", outcome.record)
            if storage is not None and outcome.spec.tune is not None:
                _tell(storage, outcome)
            yield outcome

    def _open(self, specs: list[TrialSpec]):
        if not specs:
            return None
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = JournalStorage(JournalFileBackend(specs[0].tune.storage))
        running = Counter(s.tune.study_name for s in specs)
        for name, n in running.items():
            if n == self.group_sizes.get(name):  # all candidates run (first run, --force): a new search
                try:
                    optuna.delete_study(study_name=name, storage=storage)
                except KeyError:
                    pass
            # Otherwise (a resumed or retried candidate) it competes with the rung scores already there.
            optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
        return storage


def _tell(storage, outcome) -> None:
    """Close the candidate's Optuna trial (the child asked for it; it may have died before reporting)."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=outcome.spec.tune.study_name, storage=storage)
    value = outcome.record.get("val_accuracy") if outcome.status == "ok" else None
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("peftbench_trial_id") != outcome.spec.trial_id:
            continue
        if outcome.status == "pruned":
            study.tell(t.number, state=TrialState.PRUNED, skip_if_finished=True)
        elif value is not None and math.isfinite(value):
            study.tell(t.number, float(value), skip_if_finished=True)
        else:
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)


def candidates_frame(records):
    """One row per tuning candidate (records of every status), with `chosen`: per search, the completed
    candidate with the best validation accuracy (ties: the one that started first). Validation only."""
    import pandas as pd

    if records.empty or "tune_group" not in records.columns:
        return pd.DataFrame()
    cands = records[records["tune_group"].notna()].copy()
    if cands.empty:
        return cands
    if "tune_search" not in cands.columns:
        cands["tune_search"] = None
    fallback = cands["study"] + "|" + cands["tune_group"] + "|" + cands["seed"].astype(str)
    cands["search"] = cands["tune_search"].fillna(fallback)
    cands["chosen"] = False
    for _, grp in cands.groupby("search", sort=False):
        if "val_accuracy" not in grp:
            continue
        done = grp[(grp["status"] == "ok") & grp["val_accuracy"].notna()]
        if not done.empty:
            cands.loc[done["val_accuracy"].astype(float).idxmax(), "chosen"] = True  # first maximum: earliest
    return cands


def tuning_table(records, title: str = "tuning: candidates and the choice (validation only)"):
    """Per search: each candidate's learning rate, status, rung scores and validation accuracy."""
    from rich.table import Table

    cands = candidates_frame(records)
    if cands.empty:
        return None
    table = Table(title=title, title_justify="left")
    for col in ("study", "method", "seed", "learning rate", "status", "rung scores (step: val acc)",
                "val acc", "chosen"):
        table.add_column(col, justify="left" if col in ("study", "method", "status") else "right")
    for _, grp in cands.groupby("search", sort=False):
        for _, r in grp.iterrows():
            rungs = r.get("tune_rung_scores")
            rung_text = ", ".join(f"{k}: {v:.3f}" for k, v in rungs.items()) \
                if isinstance(rungs, dict) else "-"
            val = r.get("val_accuracy")
            lr = r.get("learning_rate")
            table.add_row(str(r["study"]), str(r["method"]), str(r["seed"]),
                          "-" if lr is None or lr != lr else f"{lr:g}", str(r["status"]), rung_text,
                          "-" if val is None or val != val else f"{val:.3f}", "✓" if r["chosen"] else "")
        table.add_section()
    return table
