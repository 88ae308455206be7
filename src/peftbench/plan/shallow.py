"""Traces at depth 2 and 3, extrapolated to the model's full depth: a transformer's layers are alike, so
what one more layer adds to a step's FLOPs, weights, gradients, optimizer states and saved activations is
the same for every layer, and tracing two shallow copies costs five layers whatever the depth (30 layers of
SmolLM2 or 28 of a 3B Llama are not traced one by one). FLOPs extrapolate exactly; memory is extrapolated
phase by phase (forward, backward, optimizer: which phase holds the peak can change with depth) and the
largest taken. Checked against full-depth traces of every seed family on the embedded encoder (equal to
the byte) and decoder (tests/test_plan.py, bench/plan_accuracy.py).
"""

from __future__ import annotations

import copy
import dataclasses

from peftbench.plan.meta_model import ModelSource
from peftbench.plan.trace import StepTrace

LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")


def _text(config):
    return getattr(config, "text_config", None) or config


def layer_key(config) -> str | None:
    for key in LAYER_KEYS:
        if getattr(_text(config), key, None) is not None:
            return key
    return None


def layer_count(config) -> int | None:
    key = layer_key(config)
    return None if key is None else int(getattr(_text(config), key))


def shallow_config(config, layers: int):
    """A copy of the config with `layers` transformer layers (everything else as it is)."""
    cfg = copy.deepcopy(config)
    text = _text(cfg)
    setattr(text, layer_key(cfg), layers)
    if getattr(text, "layer_types", None) is not None:  # models listing a type per layer
        text.layer_types = list(text.layer_types)[:layers]
    return cfg


def shallow_source(source: ModelSource, layers: int) -> ModelSource:
    return dataclasses.replace(source, config=shallow_config(source.config, layers))


def extrapolated(one: StepTrace, two: StepTrace, steps: int) -> StepTrace:
    """The step `steps` layers past `one`, from two traces one layer apart: x = x1 + steps (x2 - x1)."""
    def ext(a: float, b: float) -> int:
        return int(round(a + steps * (b - a)))

    peaks = {}
    for phase in one.phase_peaks.keys() & two.phase_peaks.keys():
        (t1, s1), (t2, s2) = one.phase_peaks[phase], two.phase_peaks[phase]
        peaks[phase] = (ext(t1, t2), {k: ext(s1.get(k, 0), s2.get(k, 0)) for k in s1.keys() | s2.keys()})
    return StepTrace(one.batch_size, one.seq_len, peaks, ext(one.flops, two.flops),
                     ext(one.forward_flops, two.forward_flops), ext(one.quadratic_flops, two.quadratic_flops))


def extrapolated_bytes(one: int, two: int, steps: int) -> int:
    return int(round(one + steps * (two - one)))


class Tracer:
    """A method's training step and inference pass traced at any batch shape: on the model itself when it is
    shallow enough, else on copies at depth 2 and 3 (the first layer can differ from the rest: the embeddings'
    output stays saved beside it), extrapolated to the full depth."""

    # below, tracing the model itself costs less than building and tracing copies of 2 and 3 layers (the
    # embeddings, head, loss and optimizer are traced in each copy too)
    MIN_LAYERS_TO_EXTRAPOLATE = 8

    def __init__(self, full_model, full_mode, source: ModelSource, build, causal: bool, bf16: bool):
        self.causal, self.bf16 = causal, bf16
        self.layers = layer_count(source.config)
        if self.layers is None or self.layers < self.MIN_LAYERS_TO_EXTRAPOLATE:
            self.models = [(full_model, full_mode)]
        else:
            from peftbench.plan.trace import fake_copy

            self.models = [fake_copy(build(shallow_source(source, d))) for d in (2, 3)]

    @property
    def extrapolating(self) -> bool:
        return len(self.models) == 2

    def train(self, batch_size: int, seq_len: int) -> StepTrace:
        from peftbench.plan.trace import trace_train_step

        traces = [trace_train_step(m, mode, batch_size, seq_len, self.causal, self.bf16)
                  for m, mode in self.models]
        return extrapolated(*traces, self.layers - 2) if self.extrapolating else traces[0]

    def inference(self, batch_size: int, seq_len: int) -> int:
        from peftbench.plan.trace import trace_inference

        peaks = [trace_inference(m, mode, batch_size, seq_len, self.causal) for m, mode in self.models]
        return extrapolated_bytes(*peaks, self.layers - 2) if self.extrapolating else peaks[0]
