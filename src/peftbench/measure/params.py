"""Parameter accounting: trained vs shipped, adapter vs classifier head, against the base model's size.

Percentages use the base model's parameter count (with its head) as denominator, stated in `dimensions`.
"""

from __future__ import annotations

from torch import nn

from ..models import head_module_names


def _is_head(name: str, heads: list[str]) -> bool:
    parts = name.split(".")
    # peft wraps the head as base_model.model.classifier.modules_to_save.default.weight
    return any(h in parts for h in heads)


def count_parameters(model: nn.Module, base_params: int, head_names: list[str]) -> dict[str, float | int]:
    trainable = [(n, p.numel()) for n, p in model.named_parameters() if p.requires_grad]
    trainable_params = sum(c for _, c in trainable)
    head_params = sum(c for n, c in trainable if _is_head(n, head_names))
    total_params = sum(p.numel() for p in model.parameters())
    return {
        "trainable_params": trainable_params,
        "head_params": head_params,
        "adapter_params": trainable_params - head_params,
        "total_params": total_params,
        "base_params": base_params,
        "trainable_pct": 100.0 * trainable_params / base_params,
        "param_reduction": 1.0 - trainable_params / base_params,
    }


def saved_parameter_count(model: nn.Module) -> int:
    """Parameters a user ships: peft's saved adapter state (P-tuning keeps only the prompt embeddings),
    or the parameters a plain method changed (all of them for full fine-tuning, biases+head for BitFit)."""
    if hasattr(model, "peft_config"):
        from peft import get_peft_model_state_dict

        return sum(t.numel() for t in get_peft_model_state_dict(model).values())
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def base_parameter_count(model: nn.Module) -> tuple[int, list[str]]:
    return sum(p.numel() for p in model.parameters()), head_module_names(model)
