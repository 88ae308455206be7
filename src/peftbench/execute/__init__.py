"""Executors run TrialSpecs and hand back records; the trial function is the same for all of them."""

from peftbench.execute.base import Event, Executor, TrialOutcome
from peftbench.execute.local import LocalExecutor

__all__ = ["Event", "Executor", "LocalExecutor", "TrialOutcome"]


def make_executor(backend: str = "local", *, workers: int | None = None, trial_timeout: float | None = None,
                  address: str | None = None, gpus_per_trial: float | None = None,
                  cpus_per_trial: float | None = None):
    """The executor for --backend; Ray is imported only when asked for (it is an optional extra)."""
    from peftbench.errors import PeftbenchError

    if backend == "local":
        if address or gpus_per_trial is not None or cpus_per_trial is not None:
            raise PeftbenchError("--address, --gpus-per-trial and --cpus-per-trial need --backend ray")
        return LocalExecutor(workers=workers, trial_timeout=trial_timeout)
    if backend == "ray":
        try:
            from peftbench.execute.ray_backend import RayExecutor
        except ImportError as exc:
            raise PeftbenchError(f"the Ray backend is not available ({exc}); "
                                 "install it with: pip install 'peftbench[ray]'") from None
        return RayExecutor(address=address, gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial,
                           trial_timeout=trial_timeout, max_concurrent=workers)
    raise PeftbenchError(f"unknown backend {backend!r} (choose local or ray)")
