"""Forgetting for a decoder trained as a classifier: the backbone's general-text cross-entropy read through
the checkpoint's own language-model head, before and after training.

A sequence-classification decoder has no LM head, so the original one (the tied input embeddings as loaded,
or the checkpoint's `lm_head.weight`) is kept frozen beside it. Methods that leave the backbone's weights
alone (prefix, prompt tuning, or a head-only change) forget exactly 0: deployed without their virtual tokens,
the backbone predicts general text as before. Encoders have no next-token head: no figure, and no cost.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from peftbench.measure.forgetting import general_text_sample, next_token_ce
from peftbench.models.loading import is_decoder, load_tokenizer, resolve_model_path


def _backbone(model: nn.Module) -> nn.Module:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(inner, inner.base_model_prefix)


def _lm_head_weight(base: nn.Module, model_name: str) -> torch.Tensor | None:
    """The checkpoint's LM head: the input embeddings when tied, else `lm_head.weight` from its safetensors."""
    if getattr(base.config, "tie_word_embeddings", False):
        return base.get_input_embeddings().weight.detach().clone()
    from safetensors import safe_open

    for f in sorted(Path(resolve_model_path(model_name)).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as fh:
            if "lm_head.weight" in fh.keys():
                return fh.get_tensor("lm_head.weight").float()
    return None


class _ThroughLMHead(nn.Module):
    """backbone(ids) @ W.T as a causal LM's output, so next_token_ce reads it like any LM."""

    def __init__(self, backbone: nn.Module, weight: torch.Tensor):
        super().__init__()
        self.backbone, self.weight = backbone, weight

    def forward(self, input_ids, attention_mask=None):
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return SimpleNamespace(logits=hidden.float() @ self.weight.to(hidden.device).T)


class ClassifierForgetting:
    """Measured once on the untouched base (at construction) and once on the trained model."""

    def __init__(self, base: nn.Module, weight: torch.Tensor, sample, device: torch.device):
        self.weight, self.sample = weight, sample
        self.before = next_token_ce(_ThroughLMHead(_backbone(base), weight), sample, device)

    def measure(self, model: nn.Module, device: torch.device) -> dict[str, Any]:
        after = next_token_ce(_ThroughLMHead(_backbone(model), self.weight), self.sample, device)
        return {"general_ce_before": self.before, "general_ce_after": after, "forgetting": after - self.before,
                "forgetting_sample": self.sample.provenance}


def forgetting_view(base: nn.Module, model_name: str, device: torch.device) -> ClassifierForgetting | None:
    """The measure for a decoder classifier, None for an encoder (or a decoder whose LM head is not found)."""
    if not is_decoder(model_name):
        return None
    weight = _lm_head_weight(base, model_name)
    if weight is None:
        return None
    return ClassifierForgetting(base, weight, general_text_sample(load_tokenizer(model_name)), device)
