"""Local executor: N worker slots, one fresh process per trial; one trial per visible GPU by default."""

from __future__ import annotations

import os
import queue as queue_mod
import time
from collections import deque
from typing import Callable, Iterator

from peftbench.config.spec import TrialSpec
from peftbench.data.prepared import PreparedData
from peftbench.execute.base import Event, EventSink, TrialOutcome
from peftbench.execute.isolation import PROCESS_PREFIX, child_main, context
from peftbench.tasks import plugin_modules
from peftbench.trial.measure_training import default_threads


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def describe_exit(code: int | None) -> str:
    if code is None:
        return "trial process did not exit"
    if code < 0:
        sig = -code
        hint = " (killed: out of memory?)" if sig == 9 else ""
        return f"trial process was killed by signal {sig}{hint}"
    return f"trial process exited with code {code} without a result"


class LocalExecutor:
    """Runs trials in fresh processes on this machine. The driver alone talks to the store."""

    def __init__(self, workers: int | None = None, trial_timeout: float | None = None):
        self.gpus = visible_gpus()
        self.workers = workers or max(1, self.gpus)
        if self.gpus and self.workers > self.gpus:
            self.workers = self.gpus  # one trial per GPU: sharing a GPU would distort memory figures
        self.trial_timeout = trial_timeout
        # OMP_NUM_THREADS, when set, is the user's budget for this machine; otherwise cores / workers.
        budget = int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS", "").isdigit() else None
        self.threads = max(1, (budget or default_threads()) // self.workers)
        self._cancel = False

    def cancel(self) -> None:
        self._cancel = True

    def run(self, specs: list[TrialSpec], data: PreparedData, on_event: EventSink,
            on_start: Callable[[TrialSpec], None]) -> Iterator[TrialOutcome]:
        ctx = context()
        q = ctx.Queue()
        pending = deque(specs)
        running: dict[str, tuple] = {}  # trial_id -> (process, spec, started, slot)
        free_slots = list(range(self.workers))
        messages: dict[str, tuple[str, object]] = {}
        while pending or running:
            while pending and free_slots and not self._cancel:
                spec = pending.popleft()
                slot = free_slots.pop(0)
                on_start(spec)
                spawned = time.time()
                proc = ctx.Process(target=child_main, name=f"{PROCESS_PREFIX}trial-{spec.trial_id}",
                                   args=(spec.to_dict(), data, q, spawned, self.threads,
                                         slot if self.gpus else None, os.getpid(), tuple(plugin_modules())))
                proc.start()  # the first start waits for the forkserver's imports: not the trial's time
                running[spec.trial_id] = (proc, spec, time.time(), slot)
                on_event(Event(spec.trial_id, "started", {"method": spec.method.name}))
            if self._cancel:
                yield from self._cancel_all(running, pending)
                return
            self._drain(q, messages, on_event, block=0.2)
            for tid, (proc, spec, started, slot) in list(running.items()):
                outcome = None
                if tid in messages:
                    kind, payload = messages.pop(tid)
                    proc.join(timeout=10)
                    if proc.is_alive():
                        proc.kill()
                    outcome = (TrialOutcome(spec, "ok", payload) if kind == "result"
                               else TrialOutcome(spec, "failed", {}, str(payload)))
                elif not proc.is_alive():
                    self._drain(q, messages, on_event, block=0.5)
                    if tid in messages:
                        continue  # the result arrived after all; handled next round
                    outcome = TrialOutcome(spec, "failed", {}, describe_exit(proc.exitcode))
                elif self.trial_timeout and time.time() - started > self.trial_timeout:
                    proc.kill()
                    proc.join(timeout=10)
                    outcome = TrialOutcome(spec, "failed", {},
                                           f"trial exceeded the trial timeout of {self.trial_timeout:g} s")
                if outcome is not None:
                    del running[tid]
                    free_slots.append(slot)
                    on_event(Event(tid, "ended", {"status": outcome.status}))
                    yield outcome

    @staticmethod
    def _drain(q, messages: dict, on_event: EventSink, block: float) -> None:
        deadline = time.time() + block
        while True:
            try:
                kind, tid, payload = q.get(timeout=max(0.0, deadline - time.time()))
            except queue_mod.Empty:
                return
            if kind == "event":
                on_event(Event(tid, "progress", payload))
            else:
                messages[tid] = (kind, payload)

    @staticmethod
    def _cancel_all(running: dict, pending: deque) -> Iterator[TrialOutcome]:
        for tid, (proc, spec, _started, _slot) in list(running.items()):
            proc.kill()
            proc.join(timeout=10)
            yield TrialOutcome(spec, "cancelled", {}, "cancelled by the user (Ctrl-C)")
        running.clear()
        pending.clear()
