"""`peftbench plan`'s PlanRequest from the options `run` takes (studies/options.py), read with the same precedence, plus
plan's own: the device to plan for, its memory and peak figures."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from peftbench.errors import PeftbenchError
from peftbench.plan.assemble import PlanRequest
from peftbench.plan.memory import parse_size_gb


def request_from(options: dict[str, Any], gpu_memory: str | None, tflops: float | None,
                 bandwidth: float | None, calibrate: bool = True) -> PlanRequest:
    from peftbench.methods import DECODER_PRESETS, SEED_PRESETS, parse_methods
    from peftbench.plan.meta_model import model_source
    from peftbench.studies.settings import study_options_from
    from peftbench.models.loading import _config_is_decoder

    opts = study_options_from(options, {})
    device = opts.train.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    limit = parse_size_gb(gpu_memory)
    if opts.train.load_in_4bit and device == "cpu":
        raise PeftbenchError("--load-in-4bit needs --device cuda (bitsandbytes stores 4-bit weights on a GPU)")
    for name, value in (("--device-tflops", tflops), ("--device-bandwidth", bandwidth)):
        if value is not None and not value > 0:
            raise PeftbenchError(f"{name} must be positive, got {value}")
    opts.train.validate()
    opts.data.validate()
    decoder = _config_is_decoder(model_source(opts.model).config)
    default = DECODER_PRESETS if decoder else list(SEED_PRESETS)
    methods = parse_methods(default if opts.methods is None else opts.methods, opts.learning_rate, decoder)
    train = dataclasses.replace(opts.train, device=device)
    return PlanRequest(opts.model, opts.data, train, methods, device, limit, tflops, bandwidth, calibrate)
