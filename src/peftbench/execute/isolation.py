"""Run one trial in a fresh process, cheaply: a forkserver that has already imported torch,
transformers and peft forks each trial, so start-up costs a fork rather than ~5 s of imports.

Memory is measured inside the child, so each trial's figures are its own (freed memory from an
earlier trial cannot leak into them). The child watches the driver and exits if the driver dies.

Our processes never re-import the user's `__main__`: multiprocessing would otherwise re-run a plain script
(no `if __name__ == "__main__"` guard), or a script read from stdin, in every trial process, starting the
study again. Nothing a trial needs lives there (its target is `child_main` below).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from multiprocessing import spawn
from typing import Any

PRELOAD = ["torch", "transformers", "peft", "sklearn.metrics", "peftbench.trial.run"]
PROCESS_PREFIX = "peftbench-"  # every process peftbench starts is named so (see without_user_main)
_MAIN_KEYS = ("init_main_from_name", "init_main_from_path")
_CONTEXT: Any = None


def without_user_main(get_preparation_data):
    """Wrap multiprocessing's spawn.get_preparation_data so that the processes peftbench names (and only
    those) are not told to re-import the parent's `__main__` before they start."""
    if getattr(get_preparation_data, "_peftbench", False):
        return get_preparation_data

    def get_data(name):
        data = get_preparation_data(name)
        if str(name).startswith(PROCESS_PREFIX):
            for key in _MAIN_KEYS:
                data.pop(key, None)
        return data

    get_data._peftbench = True  # type: ignore[attr-defined]
    get_data.__wrapped__ = get_preparation_data  # type: ignore[attr-defined]
    return get_data


def context():
    """The forkserver context, created once per driver process with the heavy imports preloaded."""
    global _CONTEXT
    if _CONTEXT is None:
        # Looked up on the module at every start (popen_forkserver, popen_spawn_posix), Python 3.8 to 3.14.
        spawn.get_preparation_data = without_user_main(spawn.get_preparation_data)
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        # Start the server and wait for its imports now, so no trial's start-up figure carries them.
        warm = ctx.Process(target=time.sleep, args=(0,), name=f"{PROCESS_PREFIX}warm-up")
        warm.start()
        warm.join()
        _CONTEXT = ctx
    return _CONTEXT


def _driver_alive(driver_pid: int) -> bool:
    try:
        os.kill(driver_pid, 0)
    except ProcessLookupError:
        return False
    try:  # a killed driver its parent has not reaped yet is a zombie: as good as gone
        with open(f"/proc/{driver_pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _watch_driver(driver_pid: int) -> None:
    while True:
        time.sleep(1.0)
        if not _driver_alive(driver_pid):
            os._exit(3)  # the driver is gone: nobody will store our result


def _name_process(name: bytes) -> None:
    """Let `ps`/`pgrep peftbench-trial` find trial processes (Linux; 15 characters at most)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def child_main(spec_dict: dict, data, queue, spawned_at: float, threads: int, cuda_device: int | str | None,
               driver_pid: int, task_modules: tuple[str, ...] = ()) -> None:
    """Entry point of a trial process. Sends ('event', ...), then ('result', record) or ('error', text).

    `cuda_device`: the value for CUDA_VISIBLE_DEVICES (a GPU index, or "" for none); None leaves it as is.
    `task_modules`: modules that register tasks from outside peftbench (tasks.plugin_modules), imported
    first so the trial's task exists here too."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _name_process(b"peftbench-trial")
    if cuda_device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(cuda_device)
    threading.Thread(target=_watch_driver, args=(driver_pid,), daemon=True).start()
    import torch

    from peftbench.config.spec import TrialSpec
    from peftbench.tasks import load_plugins
    from peftbench.trial.run import format_exception, run_trial

    torch.set_num_threads(max(1, threads))
    spec = TrialSpec.from_dict(spec_dict)
    try:
        load_plugins(list(task_modules))
        _test_hooks(spec)
        record = run_trial(spec, data, progress=lambda e: queue.put(("event", spec.trial_id, e)),
                           spawned_at=spawned_at)
        queue.put(("result", spec.trial_id, record))
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a stored reason
        queue.put(("error", spec.trial_id, format_exception(exc)))


def _test_hooks(spec) -> None:
    """Fault injection for tests only (PEFTBENCH_TEST_FAULTS="method=crash,method2=hang,..."), never set by users."""
    faults = os.environ.get("PEFTBENCH_TEST_FAULTS")
    if not faults:
        return
    for item in faults.split(","):
        method, _, kind = item.partition("=")
        if method == spec.method.name:
            if kind == "crash":
                raise RuntimeError("injected crash (test fault hook)")
            if kind == "hang":
                time.sleep(10_000)
            if kind == "die":
                os._exit(9)
