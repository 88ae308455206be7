"""Parameter accounting: trained vs shipped, adapter vs classifier head, against the base model's size.

Percentages use the base model's parameter count (with its head) as denominator, stated in `dimensions`.
Every count is over unique parameters: a decoder's tied LM head is its embedding matrix, counted (and
trained) once. A causal LM has no head, so its head count is 0 and everything trained is adapter.
"""

from __future__ import annotations

from typing import Iterator

from torch import nn

from peftbench.models.loading import head_module_names


def _is_head(name: str, heads: list[str]) -> bool:
    parts = name.split(".")
    # peft wraps the head as base_model.model.classifier.modules_to_save.default.weight
    return any(h in parts for h in heads)


def unique_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """Each parameter once, under its first name, however many modules share it (tied embeddings)."""
    seen: set[int] = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in seen:
            seen.add(id(p))
            yield name, p


def numel(p: nn.Parameter) -> int:
    """Logical size of a parameter: a bitsandbytes 4-bit weight packs two values a byte, so its storage
    holds half of them; its quant state keeps the real shape."""
    shape = getattr(getattr(p, "quant_state", None), "shape", None)
    return int(shape.numel()) if shape is not None else p.numel()


def count_parameters(model: nn.Module, base_params: int, head_names: list[str]) -> dict[str, float | int]:
    trainable = [(n, numel(p)) for n, p in unique_parameters(model) if p.requires_grad]
    trainable_params = sum(c for _, c in trainable)
    head_params = sum(c for n, c in trainable if _is_head(n, head_names))
    total_params = sum(numel(p) for _, p in unique_parameters(model))
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
    return sum(numel(p) for _, p in unique_parameters(model) if p.requires_grad)


def base_parameter_count(model: nn.Module) -> tuple[int, list[str]]:
    """The base model's size (unique parameters) and its head modules (none for a causal LM)."""
    return sum(numel(p) for _, p in unique_parameters(model)), head_module_names(model)
