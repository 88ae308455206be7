"""After a study's trials: one pass that times every trial's deployed model side by side (round robin, in
the driver's process), so that the inference figures the decision layer compares are taken at the same
moments (measure/side_by_side.py) rather than each at its own trial's moment.

The pass covers every finished trial of the run's studies in the same setup (model and data), also those of
earlier runs, so one pass holds every figure a ranking compares. Seeds of one configuration share a deployed
graph and are timed once. The figures go to the store's side_by_side table; a failure here never fails the
study: it prints one warning line and the decision layer falls back to the trials' own figures.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass

from peftbench.config.spec import TrialSpec
from peftbench.store.db import Store
from peftbench.store.side_by_side import PassRow, latest_rows, save_pass

# A default study (latency_runs 30) gets 5 rounds of 4 batch-1 calls and one batch of 32 per model: for 12
# MiniLM-L6 methods on 2 idle cores about 12 x 5 x (4 x 20 ms + ~250 ms) = 20 s, plus ~6 s to build the 12
# forms (measured); --preset quick (20) 5 x 4 as well, the tests (latency_runs 5) 3 rounds of 1 call.
MIN_ROUNDS, MAX_ROUNDS, CALLS = 3, 5, 4
BATCH_ROWS = 32
MEMORY_SHARE = 0.4  # the pass holds every form at once: it is skipped when they would take more of the free memory


@dataclass(frozen=True)
class PassSettings:
    rounds: int
    calls: int
    batch_rows: int = BATCH_ROWS

    @classmethod
    def for_runs(cls, latency_runs: int) -> PassSettings:
        """As many batch-1 calls in all as a trial makes (latency_runs), in MIN_ROUNDS..MAX_ROUNDS rounds."""
        rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, latency_runs // CALLS))
        return cls(rounds, max(1, min(CALLS, latency_runs // rounds)))


def _deployed_merged(record: dict) -> bool:
    """The trial's deployed figures are the merged model's (as analysis/scores.py reads them)."""
    return bool(record.get("can_merge")) and record.get("merged_latency_p50_ms") is not None


def _form_key(spec: TrialSpec, merged: bool) -> str:
    """What decides the deployed graph: model, method and options, precision, device; not rates or seed."""
    method = {k: v for k, v in spec.method.to_dict().items() if k not in ("learning_rate", "head_learning_rate")}
    return json.dumps([spec.model, method, spec.train.load_in_4bit, spec.train.device, merged], sort_keys=True,
                      default=str)


def covered_trials(store: Store, specs: list[TrialSpec]) -> list[tuple[TrialSpec, dict]]:
    """Finished trials of the specs' studies in the specs' setup (same model and data spec) that measured a
    latency of their own (figures the pass's would stand in for), from the store."""
    studies = {s.study for s in specs}
    model, data = specs[0].model, specs[0].data
    out = []
    for row in store.rows(statuses=("ok",)):
        if row["study"] not in studies or not row["record_json"]:
            continue
        spec, record = TrialSpec.from_dict(json.loads(row["spec_json"])), json.loads(row["record_json"])
        if spec.model == model and spec.data == data and record.get("latency_p50_ms") is not None:
            out.append((spec, record))
    return out


def needs_pass(store: Store, trials: list[tuple[TrialSpec, dict]]) -> bool:
    """No single pass holds every one of these trials yet."""
    side = latest_rows(store.conn)
    passes = dict(zip(side["trial_id"], side["side_pass"]))
    found = {passes.get(spec.trial_id) for spec, _ in trials}
    return len(trials) > 0 and (None in found or len(found) != 1)


def _free_bytes(device) -> float:
    import torch

    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def run_pass(store: Store, trials: list[tuple[TrialSpec, dict]], data, settings: PassSettings | None = None) -> str:
    """Time every trial's deployed form interleaved and store the figures; returns one line on what it did."""
    import torch

    from peftbench.measure.side_by_side import interleaved
    from peftbench.tasks import task_of
    from peftbench.trial.run import resolve_device

    first = trials[0][0]
    build = getattr(task_of(first.data), "deployed_form", None)
    if build is None:
        return f"side-by-side inference pass: not available for --task {first.data.task} yet"
    settings = settings or PassSettings.for_runs(first.train.latency_runs)
    device = resolve_device(first.train.device)
    forms: dict[str, tuple[TrialSpec, bool]] = {}
    for spec, record in trials:
        merged = _deployed_merged(record)
        forms.setdefault(_form_key(spec, merged), (spec, merged))
    threads = max(int(r.get("threads") or 1) for _, r in trials)
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # as many threads as a trial used: the figures stay on the trials' footing
    t0 = time.perf_counter()
    try:
        models = {}
        for key, (spec, merged) in forms.items():
            models[key] = build(spec, data, device, merged)
            if len(models) == 1:  # the first form says how much memory all of them take
                size = sum(p.numel() * p.element_size() for p in models[key].parameters())
                if size * len(forms) > MEMORY_SHARE * _free_bytes(device):
                    return (f"side-by-side inference pass skipped: {len(forms)} models of {size / 2**20:.0f} MB "
                            f"would not fit in {MEMORY_SHARE:.0%} of the free memory; the trials' own "
                            "inference figures are used")
        samples = interleaved(models, data.test, device, data.pad_token_id, settings.rounds, settings.calls,
                              settings.batch_rows)
    finally:
        torch.set_num_threads(saved_threads)
    rows = []
    for spec, record in trials:
        merged = _deployed_merged(record)
        s = samples[_form_key(spec, merged)]
        rows.append(PassRow(spec.trial_id, "merged" if merged else "as trained", s.latency_ms, s.batch_seconds,
                            s.batch_rows))
    pass_id = hashlib.sha256(f"{time.time()}:{sorted(r.trial_id for r in rows)}".encode()).hexdigest()[:12]
    save_pass(store.conn, pass_id, rows, str(device), threads)
    return (f"side-by-side inference pass {pass_id}: {len(forms)} deployed models of {len(rows)} trials timed "
            f"round robin ({settings.rounds} rounds of {settings.calls} batch-1 calls and a batch of "
            f"{settings.batch_rows}) in {time.perf_counter() - t0:.1f} s")


def after_trials(store: Store, specs: list[TrialSpec], data, settings: PassSettings | None = None) -> None:
    """The runner's hook for one setup: run the pass when no single pass covers its trials yet. Never
    raises (a warning line instead): the trials are stored, and the decision layer has their own figures."""
    try:
        trials = covered_trials(store, specs)
        if not needs_pass(store, trials):
            return
        if callable(data):
            data = data()
        print(run_pass(store, trials, data, settings), file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - a failed pass costs its figures, never the study
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        print(f"warning: side-by-side inference pass failed ({type(exc).__name__}: {first}); the study's "
              "trials are stored, and the decision layer uses their own inference figures", file=sys.stderr)
