"""The short calibration behind a predicted time: the model built for real (random weights) with the method
applied, timed over a few training steps at the representative batch shape. A model small enough is timed at
its full depth; a bigger one at depth 1 and 2, the full depth's step extrapolated from the two
(timing.depth_extrapolated). Cached per machine, model shape, method and batch shape
(timing.cached_or_measured)."""

from __future__ import annotations

import copy

import torch

from peftbench.methods import build_model
from peftbench.plan import timing
from peftbench.plan.meta_model import config_summary
from peftbench.plan.shallow import layer_count, layer_key, shallow_config


def copy_params(config, peft_task_type: str, layers: int = 2) -> int:
    """Parameters of a copy at `layers` depth, counted on the meta device."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    auto = AutoModelForCausalLM if peft_task_type == "CAUSAL_LM" else AutoModelForSequenceClassification
    with init_empty_weights(include_buffers=True):
        m = auto.from_config(shallow_config(config, layers))
    return sum(p.numel() for p in m.parameters())


_BASES: dict[tuple, torch.nn.Module] = {}  # real bases built in this process, by (shape, depth, task type)
_WARM = False


def _real_base(config, ctx, req, layers: int) -> torch.nn.Module:
    """A real random-weight base at `layers` depth with the trial's GPU options, built once per process and
    copied for each method (a build costs seconds, a copy a fraction of one)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from peftbench.models.gpu_options import apply_gpu_options

    key = (repr(config_summary_of(config)), layers, ctx.task_type, ctx.num_labels, req.train.gradient_checkpointing)
    if key not in _BASES:
        torch.manual_seed(0)
        auto = AutoModelForCausalLM if ctx.task_type == "CAUSAL_LM" else AutoModelForSequenceClassification
        cfg = shallow_config(config, layers)
        cfg.num_labels = ctx.num_labels
        _BASES.clear()  # one at a time: a base may be hundreds of MB
        _BASES[key] = apply_gpu_options(auto.from_config(cfg), req.train)
    return copy.deepcopy(_BASES[key])


def release_bases() -> None:
    """Drop the real bases kept for calibration: a study's driver would otherwise hold a random copy of the
    model (540 MB for SmolLM2) through every trial."""
    _BASES.clear()


def config_summary_of(config) -> dict:
    text = getattr(config, "text_config", None) or config
    return {k: getattr(text, k, None) for k in ("model_type", "hidden_size", "num_attention_heads",
                                                 "intermediate_size", "vocab_size", "num_key_value_heads")}


def _real_step_seconds(config, spec, ctx, shape, req, layers: int) -> float:
    global _WARM
    model = build_model(_real_base(config, ctx, req, layers), spec, ctx)
    device = torch.device("cuda" if req.device == "cuda" else "cpu")
    model.to(device)
    b, s = shape
    vocab = getattr(getattr(config, "text_config", None) or config, "vocab_size", 1000)
    ids = torch.randint(5, max(6, min(vocab, 30000)), (b, s), device=device)
    labels = ids.clone() if ctx.task_type == "CAUSAL_LM" else torch.zeros(b, dtype=torch.long, device=device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=req.train.bf16 and device.type == "cuda"):
        if not _WARM:  # the process's first steps pay one-time kernel set-up: not the machine's rate
            timing.time_real_steps(model, batch, steps=2)
            _WARM = True
        return timing.time_real_steps(model, batch)


def calibrated_step_seconds(source, spec, ctx, shape, req, probe: float | None, may_measure: bool = True
                            ) -> float | str | None:
    """Seconds of one training step of the full model at `shape` on this machine; None when a 2-layer copy is
    too big to train here (the caller falls back to a roofline estimate); "pending" when it is not in the
    cache and `may_measure` is False."""
    if layer_key(source.config) is None or req.train.load_in_4bit:
        return None
    if copy_params(source.config, ctx.task_type) > timing.MAX_CALIBRATION_PARAMS:
        return None
    layers = layer_count(source.config)
    key = {"shape": config_summary(source), "method": spec.to_dict(), "batch": list(shape),
           "task_type": ctx.task_type, "device": req.device, "bf16": req.train.bf16,
           "checkpointing": req.train.gradient_checkpointing, "num_labels": ctx.num_labels}

    def measure() -> float:
        if copy_params(source.config, ctx.task_type, layers) <= timing.MAX_CALIBRATION_PARAMS:
            return _real_step_seconds(source.config, spec, ctx, shape, req, layers)  # the full depth itself
        return timing.depth_extrapolated(
            lambda depth: _real_step_seconds(source.config, spec, ctx, shape, req, depth), layers)

    seconds, _cached = timing.cached_or_measured(key, measure if may_measure else None, probe or 0.0)
    return "pending" if seconds is None else seconds
