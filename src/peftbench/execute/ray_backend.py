"""Ray executor: each trial is a Ray task with its own CPUs/GPUs, anywhere in a cluster.

Inside the task the trial still runs in a fresh process (the forkserver child of execute/isolation), so
memory figures stay the trial's own. The prepared data goes to the object store once per study; only
the driver writes the store, so a cluster needs no shared filesystem.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue as queue_mod
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import ray
import ray.exceptions

from peftbench.config.spec import TrialSpec
from peftbench.data.prepared import PreparedData
from peftbench.errors import PeftbenchError
from peftbench.execute.base import Event, EventSink, TrialOutcome
from peftbench.execute.isolation import child_main, context
from peftbench.execute.local import describe_exit


def run_isolated_trial(spec_dict: dict, data: PreparedData, trial_timeout: float | None,
                       threads: int) -> tuple[str, dict[str, Any], str | None]:
    """The body of a Ray task: one trial in a fresh process on this node -> (status, record, error)."""
    # Ray gives this task its GPUs through CUDA_VISIBLE_DEVICES; pass them on explicitly, because the
    # forkserver was started by an earlier task of this worker and holds that task's environment.
    gpu_ids = ray.get_gpu_ids()
    cuda_devices = ",".join(str(g) for g in gpu_ids)
    ctx = context()
    q = ctx.Queue()
    tid = TrialSpec.from_dict(spec_dict).trial_id
    proc = ctx.Process(target=child_main, name=f"peftbench-trial-{tid}",
                       args=(spec_dict, data, q, time.time(), threads, cuda_devices, os.getpid()))
    proc.start()
    started = time.time()
    try:
        while True:
            try:
                kind, _tid, payload = q.get(timeout=0.5)
            except queue_mod.Empty:
                kind = None
            if kind == "result":
                return "ok", payload, None
            if kind == "error":
                return "failed", {}, str(payload)
            if kind is None and not proc.is_alive():
                try:  # the result may have been sent just before the process ended
                    kind, _tid, payload = q.get(timeout=1.0)
                    if kind in ("result", "error"):
                        return ("ok", payload, None) if kind == "result" else ("failed", {}, str(payload))
                except queue_mod.Empty:
                    pass
                return "failed", {}, describe_exit(proc.exitcode)
            if trial_timeout and time.time() - started > trial_timeout:
                return "failed", {}, f"trial exceeded the trial timeout of {trial_timeout:g} s"
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=10)
        q.close()


class RayExecutor:
    """Runs trials as Ray tasks; same contract as LocalExecutor (one outcome per spec, never raises for
    a trial). Task failures (worker death, out of memory, lost node) become failed outcomes with the reason."""

    def __init__(self, address: str | None = None, gpus_per_trial: float | None = None,
                 cpus_per_trial: float | None = None, trial_timeout: float | None = None,
                 max_concurrent: int | None = None):
        if gpus_per_trial is not None and gpus_per_trial < 0:
            raise PeftbenchError(f"--gpus-per-trial must be 0 or more, got {gpus_per_trial:g}")
        if cpus_per_trial is not None and cpus_per_trial <= 0:
            raise PeftbenchError(f"--cpus-per-trial must be positive, got {cpus_per_trial:g}")
        if max_concurrent is not None and max_concurrent < 1:
            raise PeftbenchError(f"workers must be at least 1, got {max_concurrent}")
        if trial_timeout is not None and trial_timeout <= 0:
            raise PeftbenchError(f"trial timeout must be positive, got {trial_timeout:g}")
        self.address = address or None
        self.gpus_per_trial = gpus_per_trial
        self.cpus_per_trial = cpus_per_trial if cpus_per_trial is not None else 1.0
        self.trial_timeout = trial_timeout
        self.max_concurrent = max_concurrent
        self._cancel = False
        self._data: tuple[PreparedData, Any] | None = None  # (data, its object ref): put once

    def cancel(self) -> None:
        self._cancel = True

    # --- connecting ----------------------------------------------------------------------------
    def connect(self) -> None:
        """Start a local Ray (address None) or join a running cluster ("auto" or HOST:PORT)."""
        if ray.is_initialized():
            return
        self._check_reachable()
        on_main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if on_main else {}
        try:
            ray.init(address=self.address, include_dashboard=False if self.address is None else None,
                     log_to_driver=False, logging_level=logging.WARNING)
        except Exception as exc:  # noqa: BLE001 - connection errors come in many types
            where = f"at {self.address}" if self.address else "(local)"
            raise PeftbenchError(f"cannot start or reach the Ray cluster {where}: {_first_line(exc)}") from None
        finally:
            for sig, handler in previous.items():  # Ctrl-C stays the runner's to handle
                if handler is not None:
                    signal.signal(sig, handler)

    def check(self) -> None:
        """Reach the cluster and check that one of its nodes can hold a trial: one line if not, before a study
        plans or runs anything on it."""
        self.connect()
        self._resources()

    def _check_reachable(self) -> None:
        """Fail in seconds, not minutes: Ray retries an unreachable cluster address for a long time."""
        address = self.address
        if address is None:
            return
        if address == "auto":
            try:
                from ray._private.services import canonicalize_bootstrap_address

                address = canonicalize_bootstrap_address(address)
            except Exception:  # noqa: BLE001 - let ray.init report what it finds
                return
            if address is None:
                raise PeftbenchError("--address auto: no running Ray cluster found on this machine "
                                     "(start one with `ray start --head`, or give HOST:PORT)")
        address = address.removeprefix("ray://")
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise PeftbenchError(f"--address must be auto or HOST:PORT, got {self.address!r}")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except OSError as exc:
            raise PeftbenchError(f"cannot reach the Ray cluster at {self.address}: "
                                 f"{exc.strerror or exc}") from None

    def _resources(self) -> tuple[float, float, int]:
        """(cpus, gpus) per trial and how many trials the cluster can hold at once."""
        total = ray.cluster_resources()
        gpus = self.gpus_per_trial
        if gpus is None:
            gpus = 1.0 if total.get("GPU", 0) >= 1 else 0.0  # one GPU per trial where there are GPUs
        cpus = self.cpus_per_trial
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        if not any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
            raise PeftbenchError(f"no node of the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs for one trial"
                                 f" (cluster: {total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs); "
                                 f"lower --cpus-per-trial / --gpus-per-trial")
        fits = math.floor(total.get("CPU", 0) / cpus)
        if gpus > 0:
            fits = min(fits, math.floor(total.get("GPU", 0) / gpus))
        if self.max_concurrent:
            fits = min(fits, self.max_concurrent)
        return cpus, gpus, max(1, fits)

    def _data_ref(self, data: PreparedData):
        if self._data is None or self._data[0] is not data:
            self._data = (data, ray.put(data))
        return self._data[1]

    # --- running -------------------------------------------------------------------------------
    def run(self, specs: list[TrialSpec], data: PreparedData, on_event: EventSink,
            on_start: Callable[[TrialSpec], None]) -> Iterator[TrialOutcome]:
        self.connect()
        cpus, gpus, slots = self._resources()
        data_ref = self._data_ref(data)
        threads = max(1, int(cpus))
        # No Ray-level retries: a trial that killed its worker is a failed trial (--retries decides).
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0, retry_exceptions=False)(run_isolated_trial)
        pending = deque(specs)
        running: dict[Any, TrialSpec] = {}  # object ref -> spec; at most `slots` at once (started = running)
        while pending or running:
            while pending and len(running) < slots and not self._cancel:
                spec = pending.popleft()
                on_start(spec)
                ref = task.options(name=f"peftbench-trial-{spec.method.name}").remote(
                    spec.to_dict(), data_ref, self.trial_timeout, threads)
                running[ref] = spec
                on_event(Event(spec.trial_id, "started", {"method": spec.method.name}))
            if self._cancel:
                yield from self._cancel_all(running, pending, on_event)
                return
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.2)
            for ref in done:
                spec = running.pop(ref)
                outcome = self._outcome(ref, spec)
                on_event(Event(spec.trial_id, "ended", {"status": outcome.status}))
                yield outcome

    @staticmethod
    def _outcome(ref, spec: TrialSpec) -> TrialOutcome:
        try:
            status, record, error = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return TrialOutcome(spec, "cancelled", {}, "cancelled by the user (Ctrl-C)")
        except ray.exceptions.OutOfMemoryError as exc:
            return TrialOutcome(spec, "failed", {}, f"Ray killed the trial's worker: out of memory "
                                                    f"({_first_line(exc)})")
        except ray.exceptions.WorkerCrashedError as exc:
            return TrialOutcome(spec, "failed", {}, f"the Ray worker running the trial died ({_first_line(exc)})")
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return TrialOutcome(spec, "failed", {}, f"the Ray task failed: {type(cause).__name__}: "
                                                    f"{_first_line(cause)}")
        except ray.exceptions.RayError as exc:  # node died, object lost, actor/runtime-env errors ...
            return TrialOutcome(spec, "failed", {}, f"Ray error: {type(exc).__name__}: {_first_line(exc)}")
        return TrialOutcome(spec, status, record, error)

    @staticmethod
    def _cancel_all(running: dict, pending: deque, on_event: EventSink) -> Iterator[TrialOutcome]:
        for ref in running:
            with contextlib.suppress(Exception):  # a task that already ended cannot be cancelled
                ray.cancel(ref, force=True)  # kills the worker; its trial process follows (driver watchdog)
        for ref, spec in list(running.items()):
            on_event(Event(spec.trial_id, "ended", {"status": "cancelled"}))
            yield TrialOutcome(spec, "cancelled", {}, "cancelled by the user (Ctrl-C)")
        running.clear()
        pending.clear()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
