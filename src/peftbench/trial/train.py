"""The training loop: plain PyTorch on purpose, so what is timed is what is read.

AdamW, linear warm-up then decay, gradient clipping, length-bucketed batches; deterministic for a seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from peftbench.config.spec import TrainSpec
from peftbench.data.prepared import TokenizedSet, num_train_batches, train_batches


@dataclass
class TrainResult:
    seconds: float
    steps: int
    samples: int
    final_loss: float
    first_step_time: float  # wall-clock (time.time) when the first step began
    cpu_seconds: float  # CPU time of this process over the same span: wall x threads when nothing competes
    stopped: bool = False  # the checkpoint asked to stop before the last step (a pruned tuning candidate)
    checkpoint_seconds: float = 0.0  # wall time spent in the checkpoint: left out of `seconds` and CPU time


def optimizer_groups(model: torch.nn.Module, weight_decay: float, lr: float, head_lr: float | None = None,
                     head_names: tuple[str, ...] = ()) -> list[dict]:
    """AdamW groups: no weight decay on biases and norms; the head (modules named in `head_names`) at its
    own rate when one is given."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "LayerNorm" in name or "norm" in name.lower()
        is_head = head_lr is not None and not set(head_names).isdisjoint(name.split("."))
        groups.setdefault((no_decay, is_head), []).append(p)
    return [{"params": params, "weight_decay": 0.0 if no_decay else weight_decay,
             "lr": head_lr if is_head else lr}
            for (no_decay, is_head), params in groups.items()]


def total_steps(n: int, spec: TrainSpec) -> int:
    return num_train_batches(n, spec.batch_size) * spec.epochs


def train(model: torch.nn.Module, data: TokenizedSet, spec: TrainSpec, lr: float, seed: int,
          device: torch.device, pad_id: int, on_step: Callable[[int, int, float], None] | None = None,
          head_lr: float | None = None, head_names: tuple[str, ...] = (),
          checkpoint: Callable[[int], bool] | None = None) -> TrainResult:
    """`checkpoint(step)` runs after each step (tuning scores validation there); True stops training."""
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    steps_total = total_steps(len(data), spec)
    # fused AdamW: one kernel over all parameters instead of a Python loop (CPU and CUDA in torch >= 2.4)
    opt = torch.optim.AdamW(optimizer_groups(model, spec.weight_decay, lr, head_lr, head_names), lr=lr,
                            fused=True)
    sched = get_linear_schedule_with_warmup(opt, int(spec.warmup_ratio * steps_total), steps_total)
    adalora = getattr(getattr(model, "base_model", None), "update_and_allocate", None)
    autocast = spec.bf16 and device.type == "cuda"
    model.train()
    step, samples, loss_value = 0, 0, float("nan")
    stopped, paused, cpu_paused = False, 0.0, 0.0
    first_step_time = time.time()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _epoch in range(spec.epochs):
        for batch in train_batches(data, spec.batch_size, generator, pad_id):
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                           spec.max_grad_norm)
            opt.step()
            sched.step()
            step += 1
            if adalora is not None:
                adalora(step)  # AdaLoRA's rank re-allocation needs gradients, so before zero_grad
            opt.zero_grad(set_to_none=True)
            samples += len(batch["labels"])
            if on_step is not None and (step % 5 == 0 or step == steps_total):
                loss_value = float(loss.detach())
                on_step(step, steps_total, loss_value)
            if checkpoint is not None:
                t_pause, cpu_pause = time.perf_counter(), time.process_time()
                stopped = checkpoint(step) and step < steps_total
                paused += time.perf_counter() - t_pause
                cpu_paused += time.process_time() - cpu_pause
                if stopped:
                    break
        if stopped:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds, cpu_seconds = time.perf_counter() - t0 - paused, time.process_time() - cpu0 - cpu_paused
    del opt, sched
    return TrainResult(seconds, step, samples, float(loss.detach()), first_step_time, cpu_seconds, stopped,
                       paused)
