"""GPU options of a trial: a 4-bit base (QLoRA, through bitsandbytes) and gradient checkpointing.

`check_gpu_options` runs before anything loads, so a wrong setup stops with one line rather than deep in a
trial; `apply_gpu_options` runs on the freshly loaded base, before the method is built on it.
Gradient checkpointing is plain PyTorch and works on a CPU too (measured: the loss and gradients match a
run without it), so only 4-bit needs CUDA.
"""

from __future__ import annotations

import importlib.util

from torch import nn

from peftbench.config.spec import TrainSpec
from peftbench.errors import PeftbenchError

# Methods that train the base's own weights cannot run on a 4-bit base: its quantized weights are frozen.
NEEDS_FULL_PRECISION = ("full",)


def check_gpu_options(train_spec: TrainSpec, device, family: str | None = None) -> None:
    """Refuse, in one line, options this machine (or the method `family`) cannot honour."""
    if not train_spec.load_in_4bit:
        return
    import torch

    if not torch.cuda.is_available():
        raise PeftbenchError("--load-in-4bit needs a CUDA GPU (bitsandbytes); this machine has none")
    if device is not None and torch.device(device).type != "cuda":
        raise PeftbenchError(f"--load-in-4bit needs a CUDA GPU (bitsandbytes); the trial runs on {device}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise PeftbenchError("--load-in-4bit needs bitsandbytes: pip install bitsandbytes")
    if family in NEEDS_FULL_PRECISION:
        raise PeftbenchError(f"{family}: a 4-bit base cannot be fine-tuned in full; use a PEFT method "
                             f"(lora, ...) or leave out --load-in-4bit")


def quantized_loading(device=None) -> dict:
    """`from_pretrained` arguments for a 4-bit NF4 base (bf16 compute) placed whole on one CUDA device."""
    import torch
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                bnb_4bit_compute_dtype=torch.bfloat16)
    where = torch.device(device if device is not None else "cuda")
    index = where.index if where.index is not None else torch.cuda.current_device()
    return {"quantization_config": config, "device_map": {"": index}}


def apply_gpu_options(model: nn.Module, train_spec: TrainSpec) -> nn.Module:
    """Ready a freshly loaded base for the trial's options; call before building the method on it."""
    checkpointing = train_spec.gradient_checkpointing
    if checkpointing and not getattr(model, "supports_gradient_checkpointing", False):
        raise PeftbenchError(f"--gradient-checkpointing: {type(model).__name__} does not support it")
    kwargs = {"use_reentrant": False}  # the reentrant variant needs inputs that require grad, and warns
    if train_spec.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        # Freezes the base, casts its non-quantized weights to fp32 for stable training, and turns on
        # gradient checkpointing only when asked.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                                gradient_checkpointing_kwargs=kwargs)
    elif checkpointing:
        _checkpointing_on(model, kwargs)
    if checkpointing:
        # peft freezes the embeddings; this keeps a graph through the checkpointed blocks regardless.
        model.enable_input_require_grads()
        model.config.use_cache = False  # a cache is useless while training and conflicts with recomputing
    return model


def _checkpointing_on(model: nn.Module, kwargs: dict) -> None:
    """transformers 5 renamed gradient to activation checkpointing (the old name warns); take either."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def checkpointing_is_on(model: nn.Module) -> bool:
    """Whether any block of the (peft-wrapped or plain) model recomputes its activations."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())
