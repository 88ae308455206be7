"""One trial: TrialSpec + prepared data -> one self-describing record. A short skeleton; what differs
between tasks (data, head, scoring, their own measures) is the task's (tasks/).

Runs inside a fresh process (see execute/), so its memory figures belong to this trial alone.
"""

from __future__ import annotations

import random
import time
import traceback
from typing import Any, Callable

import numpy as np
import torch

from peftbench.config.spec import TrialSpec
from peftbench.measure import memory, params, size
from peftbench.methods import BuildContext, build_model, family
from peftbench.models.gpu_options import apply_gpu_options, check_gpu_options
from peftbench.tasks import model_is_decoder, task_of
from peftbench.trial.measure_training import train_and_measure
from peftbench.trial.record import start_record
from peftbench.trial.rungs import rungs_for
from peftbench.trial.train import total_steps

Progress = Callable[[dict[str, Any]], None]


def run_trial(spec: TrialSpec, data, progress: Progress | None = None,
              spawned_at: float | None = None) -> dict[str, Any]:
    """Train and measure. Raises on failure; the executor turns exceptions into failed records."""
    task = task_of(spec.data)
    task.check_trial(spec)
    entered, device, say, record = begin_trial(spec, data, progress)
    train_set = data.train_pool.take(spec.train.train_size)
    base = apply_gpu_options(task.load_base(spec, data, device, spec.train.load_in_4bit), spec.train)
    # Measured on the untouched base, before any method changes it (a zero-shot floor, forgetting's "before").
    state = task.before_training(base, spec, data, device, record, say)
    base_params, heads = params.base_parameter_count(base)
    record["head_modules"] = heads
    steps = total_steps(len(train_set), spec.train)
    context = BuildContext(total_steps=steps, num_labels=data.num_labels, task_type=task.peft_task_type,
                           decoder=model_is_decoder(base))
    model = build_model(base, spec.method, context)
    rungs = rungs_for(spec, data, model, device, steps, task.rung_score) if task.can_tune else None
    train_and_measure(record, model, base_params, heads, train_set, spec, data, device, steps, say, rungs,
                      entered, spawned_at)

    say({"phase": "evaluate"})
    t_eval = time.perf_counter()
    val_headline = task.score_validation(model, spec, data, device, record, state)
    if rungs is not None and rungs.last_rung(val_headline):
        # stopped by the search: validation figures only, the test split is never read
        return rungs.pruned_record(record, entered)
    if rungs is not None:
        record.update(rungs.fields())
    task.score_test(model, spec, data, device, record, state)
    record["eval_seconds"] = time.perf_counter() - t_eval

    say({"phase": "inference"})
    t_inf = time.perf_counter()
    memory.release_and_reset_peak()
    task.measure_inference(model, spec, data, device, record)
    return finish_inference(record, model, spec, data, device, task.merged, t_inf, entered)


def begin_trial(spec: TrialSpec, data, progress: Progress | None):
    """What every task's trial does first: the memory baseline, seeds, the device (and a refusal of options
    it cannot honour), and the record's identity and provenance. Returns (entered, device, say, record)."""
    entered = time.time()
    quiet_library_warnings()
    baseline_rss = memory.current_rss_mb()
    seed_everything(spec.seed)
    device = resolve_device(spec.train.device)
    memory.cuda_reset(device)
    check_gpu_options(spec.train, device, spec.method.family)
    say = progress or (lambda _event: None)
    return entered, device, say, start_record(spec, data, device, baseline_rss)



def finish_inference(record: dict[str, Any], model, spec: TrialSpec, data, device: torch.device, merged,
                     t_inf: float, entered: float) -> dict[str, Any]:
    """What every task does after its unmerged inference figures: memory, the shipped size, the merged
    figures (`merged(model, data, spec, device)`) where the method can merge, and the trial's times."""
    record["inference_peak_rss_mb"] = memory.peak_rss_mb()
    record["adapter_bytes"] = size.shipped_bytes(model)
    fam = family(spec.method.family)
    record["can_merge"] = fam.can_merge
    if fam.can_merge:
        try:
            record.update(merged(model, data, spec, device))
        except Exception as exc:  # noqa: BLE001 - a merge peft cannot do costs the merged figures, not the trial
            # e.g. peft's IA3 unload assumes every modules_to_save module has a .weight; a trained pooler has not
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            record["merge_error"] = f"{type(exc).__name__}: {first}"
    record["inference_seconds"] = time.perf_counter() - t_inf
    record["trial_seconds"] = time.time() - entered
    record["finished_at"] = time.time()
    return record



def resolve_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from peftbench.errors import PeftbenchError

            raise PeftbenchError("--device cuda was asked for, but no CUDA GPU is visible")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def quiet_library_warnings() -> None:
    """Library deprecation chatter would drown the progress display; real errors still raise."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*Unsupported layer type.*")
    warnings.filterwarnings("ignore", message=".*Converting a tensor with requires_grad=True to a scalar.*")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)




def format_exception(exc: BaseException) -> str:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc}\n" + "".join(tb[-6:])


