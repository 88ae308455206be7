"""A classify trial's deployed model, rebuilt from its spec for the side-by-side inference pass.

Batch-1 latency and batch-32 throughput depend on the deployed graph - the base with the method's modules
(adapters, prompt encoder, prefix), or the merged base where the method merges - and on its shapes and
precision, not on the trained values: dense kernels do the same work whatever the numbers are. So the pass
rebuilds each trial's form from its spec with untrained values and needs no saved weights.
tests/test_timing_noise.py checks the premise where it is cheap: the base timed against a copy with other
random weights, and merged LoRA against Full (one graph), agree within the pass's own noise.
"""

from __future__ import annotations

import torch
from torch import nn

from peftbench.config.spec import TrialSpec
from peftbench.methods import BuildContext, build_model
from peftbench.models.gpu_options import apply_gpu_options
from peftbench.models.loading import is_decoder, load_classifier

# AdaLoRA's schedule needs a length; it shapes the run, not the deployed graph (its ranks are masks).
_STEPS = 100


def deployed_form(spec: TrialSpec, data, device: torch.device, merged: bool) -> nn.Module:
    """The model the trial deployed: its method built on a fresh base, merged when `merged`."""
    torch.manual_seed(spec.seed)
    base = apply_gpu_options(load_classifier(spec.model, data.num_labels, load_in_4bit=spec.train.load_in_4bit,
                                             device=device), spec.train)
    context = BuildContext(total_steps=_STEPS, num_labels=data.num_labels, task_type="SEQ_CLS",
                           decoder=is_decoder(base))
    model = build_model(base, spec.method, context)
    if merged:
        model = model.merge_and_unload()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
