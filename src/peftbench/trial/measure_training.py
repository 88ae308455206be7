"""What every trial measures around training, whatever its task: parameter accounting, FLOPs of a
representative step, the training run, its timing (and whether other work shared the machine) and memory."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch

from peftbench.config.spec import TrialSpec
from peftbench.measure import flops as fl
from peftbench.measure import memory, params
from peftbench.measure.machine_load import (
    CONTENDED_EXTRA_LOAD,  # noqa: F401 - the thresholds' old home
    CONTENDED_OTHER_CORES,  # noqa: F401
    CONTENDED_UTILISATION,
    LoadProbe,
    available_cores,
    contention_note,
    load_reasons,
)
from peftbench.trial.train import train

Progress = Callable[[dict[str, Any]], None]


def to_device(model, spec: TrialSpec, device: torch.device):
    """Move a model to the trial's device; a 4-bit base is placed there by its loader and stays."""
    return model if spec.train.load_in_4bit else model.to(device)


def representative_batch(data, batch_size: int, pad_id: int) -> dict[str, torch.Tensor]:
    """The batch_size training rows around the median length: what a typical bucketed step sees."""
    order = np.argsort(data.lengths, kind="stable")
    mid = max(0, len(order) // 2 - batch_size // 2)
    return data.batch(order[mid:mid + batch_size], pad_id)


def train_and_measure(record: dict[str, Any], model, base_params: int, heads: list[str], train_set, spec: TrialSpec,
                      data, device: torch.device, steps: int, say: Progress, rungs, entered: float,
                      spawned_at: float | None) -> None:
    """Parameter accounting, FLOPs of a representative step, then training, its timing and its memory: the
    same for every task (the set's own `batch` makes the task's batches)."""
    record.update(params.count_parameters(model, base_params, heads))
    record["saved_params"] = params.saved_parameter_count(model)
    to_device(model, spec, device)
    batch = {k: v.to(device) for k, v in representative_batch(train_set, spec.train.batch_size,
                                                              data.pad_token_id).items()}
    model.train()
    step_flops, fwd_flops = fl.train_step_flops(model, batch)
    batch_tokens = int(batch["attention_mask"].sum())
    record.update(flops_per_step=step_flops, forward_flops_per_step=fwd_flops, flops_batch_tokens=batch_tokens,
                  flops_per_token=step_flops / max(batch_tokens, 1),
                  flops_batch_shape=list(batch["input_ids"].shape))
    del batch

    say({"phase": "train", "step": 0, "total": steps})
    load_before, probe = os.getloadavg()[0], LoadProbe.start()
    result = train(model, train_set, spec.train, spec.method.learning_rate, spec.seed, device,
                   data.pad_token_id,
                   on_step=lambda s, t, loss: say({"phase": "train", "step": s, "total": t, "loss": loss}),
                   head_lr=spec.method.head_learning_rate, head_names=tuple(heads), checkpoint=rungs)
    # tokens trained on: every row's real tokens, once per epoch it was seen (padding not counted)
    epochs_seen = result.samples / max(len(train_set), 1)
    train_tokens = float(train_set.lengths.sum()) * epochs_seen
    record.update(
        startup_seconds=(result.first_step_time - spawned_at) if spawned_at else None,
        entered_to_first_step_seconds=result.first_step_time - entered,
        train_seconds=result.seconds, seconds_per_epoch=result.seconds / spec.train.epochs,
        train_steps=result.steps, train_samples=result.samples,
        train_samples_per_s=result.samples / result.seconds, final_train_loss=result.final_loss,
        train_tokens=train_tokens, train_tokens_per_s=train_tokens / result.seconds,
        # FLOPs of the representative step x steps: an estimate, since batches vary in length.
        train_flops=step_flops * result.steps,
        achieved_flops_per_s=step_flops * result.steps / result.seconds,
        peak_rss_mb=memory.peak_rss_mb(),
    )
    # Training memory is what the trial added to its process: the baseline holds the preloaded libraries.
    record["peak_rss_net_mb"] = record["peak_rss_mb"] - record["baseline_rss_mb"]
    record.update(timing_load(result, device, load_before, probe.other_cores()))
    record["peak_cuda_allocated_mb"], record["peak_cuda_reserved_mb"] = memory.cuda_peaks_mb(device)


def timing_load(result, device: torch.device, load_before: float,
                other_cores: float | None = None) -> dict[str, Any]:
    """CPU time beside wall time, the load, and the cores other processes kept busy meanwhile
    (measure/machine_load.py): a timing taken while other work shared the machine is flagged, not stored
    as if clean. On CPU, a quiet machine gives CPU time close to wall x threads and ~0 other cores."""
    threads = torch.get_num_threads()
    load_after = os.getloadavg()[0]
    cores = default_threads()
    utilisation = result.cpu_seconds / (result.seconds * threads) if result.seconds > 0 else None
    out = {"train_cpu_seconds": result.cpu_seconds, "threads": threads, "cpu_utilisation": utilisation,
           "load_avg_start": load_before, "load_avg_end": load_after, "other_cores_busy": other_cores,
           "timing_contended": False, "timing_note": None}
    if device.type != "cpu" or utilisation is None:
        return out
    reasons = []
    if utilisation < CONTENDED_UTILISATION:
        reasons.append(f"CPU time {result.cpu_seconds:.0f} s over {result.seconds:.0f} s x {threads} threads "
                       f"({utilisation:.0%})")
    reasons += load_reasons(load_before, load_after, other_cores, cores)
    if reasons:
        out.update(timing_contended=True, timing_note=contention_note(reasons))
    return out



def default_threads() -> int:
    """Threads a trial may use by default: every core this process may run on."""
    return available_cores()
