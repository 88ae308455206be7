"""Prompt-based methods through peft: prefix tuning, P-tuning and prompt tuning (virtual tokens)."""

from torch import nn

from .base import BuildContext, MethodFamily, Option
from .lora import _seq_cls, _wrap

TOKENS = Option(16, int, "number of virtual tokens", minimum=1)


def build_prefix(model: nn.Module, o: dict, ctx: BuildContext) -> nn.Module:
    from peft import PrefixTuningConfig

    return _wrap(model, _seq_cls(PrefixTuningConfig, num_virtual_tokens=o["tokens"],
                                 prefix_projection=o["projection"]))


def build_ptuning(model: nn.Module, o: dict, ctx: BuildContext) -> nn.Module:
    from peft import PromptEncoderConfig

    return _wrap(model, _seq_cls(PromptEncoderConfig, num_virtual_tokens=o["tokens"],
                                 encoder_hidden_size=o["encoder_hidden"]))


def build_prompt(model: nn.Module, o: dict, ctx: BuildContext) -> nn.Module:
    from peft import PromptTuningConfig

    return _wrap(model, _seq_cls(PromptTuningConfig, num_virtual_tokens=o["tokens"]))


PREFIX = MethodFamily(
    name="prefix", summary="Prefix tuning: trained key/value prefixes in every attention layer.",
    default_lr=3e-2, build=build_prefix, lr_grid=(1e-2, 3e-2, 1e-1),
    options={"tokens": TOKENS, "projection": Option(False, bool, "reparameterise prefixes through an MLP")},
)
PTUNING = MethodFamily(
    name="ptuning", summary="P-tuning: virtual-token embeddings produced by a small prompt-encoder MLP.",
    default_lr=3e-2, build=build_ptuning, lr_grid=(3e-3, 1e-2, 3e-2),
    options={"tokens": TOKENS, "encoder_hidden": Option(128, int, "prompt-encoder hidden size", minimum=1)},
)
PROMPT = MethodFamily(
    name="prompt", summary="Prompt tuning: trained virtual-token embeddings prepended to the input.",
    default_lr=3e-2, build=build_prompt, lr_grid=(1e-2, 3e-2, 1e-1), options={"tokens": TOKENS},
)
