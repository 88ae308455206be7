"""From a traced step to the memory figure a trial measures: the peak split into weights, gradients,
optimizer states, activations and (4-bit) quantisation state; the CPU figure a trial records (its net RSS
high-water mark) or the CUDA one (peak allocated); whether it fits a limit, and the largest batch that does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from peftbench.plan.trace import StepTrace

MB = 2**20
# NF4 (bitsandbytes, no double quantisation, as models/gpu_options.py loads it): half a byte per weight and
# one fp32 absmax per block of 64 weights.
NF4_BYTES_PER_PARAM = 0.5
NF4_BLOCK = 64
# The net RSS high-water mark a CPU trial records is more than the traced peak of live tensors: the saved
# tensors are the same in a real step (checked op for op), but glibc keeps freed activation blocks in its
# arenas, and the process adds a fixed part (the FLOP-count step, autograd and oneDNN scratch). Weights and
# optimizer states are allocated once and do not fragment; activations churn every step, and the more steps
# of varied (length-bucketed) shapes, the more the arenas keep: the scale grows with the log of the trial's
# steps. Fitted (relative least squares, 2026-12-06) on bench/plan_accuracy.py's 27 trials (6 and 10 steps:
# the embedded encoder at 128 and 256 tokens, a wide BERT, the embedded decoder classifying and generating)
# and the quick preset's 12 trials (64 steps); checked out of sample on the default study's 12 trials (126
# steps): median |error| 5.7 %, worst 9.1 % (the step-free fit on 10-step runs alone was 28 % under there).
# activations x (1.040 + 0.209 ln steps) + 78.9 MiB. Past 126 steps the log is extrapolated; at 378 steps
# (P-tuning len16/len32, 6 epochs, seeds 3-5, 2026-12-06) it predicted 669/819 MiB against 648/784 measured.
CPU_ACTIVATION_SCALE = 1.040
CPU_ACTIVATION_PER_LN_STEP = 0.209
CPU_FIXED_MB = 78.9
HEAD_NAMES = ("classifier", "score", "lm_head")


@dataclass
class MemoryPlan:
    """Predicted training memory in MiB, by part, and the figure a trial measures on the device."""

    weights_mb: float
    gradients_mb: float
    optimizer_mb: float
    activations_mb: float
    quant_state_mb: float
    allocator_mb: float  # CPU only: what the RSS adds to the live tensors (see cpu_activation_scale)
    trial_extra_mb: float  # what the trial itself keeps beside the model while it trains (trial_extra_bytes)
    peak_mb: float  # the device figure: CPU net RSS high-water mark, or CUDA peak allocated
    measured_as: str
    limit_mb: float | None = None
    fits: bool | None = None
    largest_batch: int | None = None

    def as_dict(self) -> dict:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def quantized_params(model: nn.Module) -> int:
    """Weights bitsandbytes would store in 4 bits: every Linear weight of the base but the head's."""
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and not set(HEAD_NAMES) & set(name.split(".")) \
                and "lora_" not in name and "modules_to_save" not in name:
            total += module.weight.numel()
    return total


def trial_extra_bytes(config, task: str, decoder: bool) -> int:
    """Tensors a trial holds beside the model it trains, outside the training step: a decoder trained as a
    classifier keeps a copy of its language-model head (fp32, vocabulary x hidden) to measure forgetting
    before and after (tasks/classify/forgetting.py). Nothing for the other tasks."""
    if task != "classify" or not decoder:
        return 0
    text = getattr(config, "text_config", None) or config
    vocab, hidden = getattr(text, "vocab_size", None), getattr(text, "hidden_size", None)
    return 4 * vocab * hidden if vocab and hidden else 0


def cpu_activation_scale(steps: int) -> float:
    """What a CPU trial's RSS holds per MiB of traced activations after `steps` training steps."""
    return CPU_ACTIVATION_SCALE + CPU_ACTIVATION_PER_LN_STEP * math.log(max(int(steps), 1))


def memory_plan(trace: StepTrace, device: str, quantized: int = 0, extra_bytes: int = 0, steps: int = 1
                ) -> MemoryPlan:
    """The split at the traced peak, with a 4-bit base's quantised weights at NF4's size (they were traced
    in fp32), what the trial keeps beside the model (`extra_bytes`), and the figure the device's trial
    records after its `steps` training steps."""
    split = {k: v / MB for k, v in trace.split_bytes.items()}
    quant_state = quantized / NF4_BLOCK * 4 / MB
    saved = quantized * (4 - NF4_BYTES_PER_PARAM) / MB
    weights = split.get("weights", 0.0) - saved
    extra = extra_bytes / MB
    peak = trace.peak_bytes / MB - saved + quant_state + extra
    activations = split.get("activations", 0.0)
    allocator = 0.0
    if device == "cpu":
        allocator = (cpu_activation_scale(steps) - 1.0) * activations + CPU_FIXED_MB
        peak += allocator
        measured_as = "CPU: net RSS high-water mark of the trial process (peak_rss_net_mb)"
    else:
        measured_as = "CUDA: peak allocated by tensors (peak_cuda_allocated_mb; CUDA context not counted)"
    return MemoryPlan(weights, split.get("gradients", 0.0), split.get("optimizer", 0.0), activations,
                      quant_state, allocator, extra, peak, measured_as)


def with_limit(plan: MemoryPlan, limit_mb: float | None, batch: int, other: MemoryPlan, other_batch: int
               ) -> MemoryPlan:
    """Whether the peak fits `limit_mb`, and the largest batch that does: the peak grows linearly with the
    batch at a fixed sequence length (activations; weights and states do not), so two traced batch sizes give
    its slope."""
    if limit_mb is None:
        return plan
    plan.limit_mb, plan.fits = limit_mb, plan.peak_mb <= limit_mb
    slope = (plan.peak_mb - other.peak_mb) / (batch - other_batch) if batch != other_batch else 0.0
    fixed = plan.peak_mb - slope * batch
    if fixed > limit_mb:
        plan.largest_batch = 0
    elif slope <= 0:
        plan.largest_batch = None  # no batch size changes the peak: any fits
    else:
        plan.largest_batch = int((limit_mb - fixed) // slope)
    return plan


def parse_size_gb(text: str | float | None, what: str = "--gpu-memory") -> float | None:
    """--gpu-memory / --max-memory: '40', '40GB', '40G', '512MB' or '0.5 GiB', as MiB (a plain number is
    GiB)."""
    from peftbench.errors import PeftbenchError

    if text is None:
        return None
    raw = str(text).strip().lower().replace(" ", "")
    units = (("gib", 1024.0), ("gb", 1024.0), ("g", 1024.0), ("mib", 1.0), ("mb", 1.0), ("m", 1.0))
    factor = 1024.0
    for suffix, f in units:
        if raw.endswith(suffix):
            raw, factor = raw[: -len(suffix)], f
            break
    try:
        value = float(raw)
    except ValueError:
        raise PeftbenchError(f"{what} must be a size such as 40, 40GB or 512MB, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise PeftbenchError(f"{what} must be a positive, finite size, got {text!r}")
    return value * factor
