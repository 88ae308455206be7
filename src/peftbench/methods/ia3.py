"""IA3 and LayerNorm tuning through peft: methods that rescale or re-normalise rather than add updates."""

from torch import nn

from peftbench.methods.base import BuildContext, MethodFamily, Option
from peftbench.methods.lora import _wrap, peft_config


def build_ia3(model: nn.Module, o: dict, ctx: BuildContext) -> nn.Module:
    from peft import IA3Config

    # peft knows the right key/value/feed-forward names for common architectures; fall back to its defaults.
    return _wrap(model, peft_config(ctx, IA3Config))


def build_ln_tuning(model: nn.Module, o: dict, ctx: BuildContext) -> nn.Module:
    from peft import LNTuningConfig

    return _wrap(model, peft_config(ctx, LNTuningConfig, target_modules=norm_module_names(model)))


NORM_CLASS_SUFFIXES = ("RMSNorm", "LayerNorm")  # LlamaRMSNorm, Qwen2RMSNorm, T5LayerNorm, ...


def norm_module_names(model: nn.Module) -> list[str]:
    """Name suffixes of the model's normalisation layers: LayerNorm (BERT, GPT-2) and RMSNorm (Llama's
    input_layernorm, post_attention_layernorm and final norm), which transformers defines per model."""
    kinds = (nn.LayerNorm, getattr(nn, "RMSNorm", nn.LayerNorm))
    return sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                   if n and (isinstance(m, kinds) or type(m).__name__.endswith(NORM_CLASS_SUFFIXES))})


IA3 = MethodFamily(
    name="ia3", summary="IA3: learned vectors rescale keys, values and feed-forward activations.",
    default_lr=1e-2, build=build_ia3, lr_grid=(3e-3, 1e-2, 3e-2), can_merge=True,
    decoder_lr=1e-2, decoder_lr_grid=(3e-3, 1e-2, 3e-2),  # validation evidence: methods/evidence.py
    lr_note="scaling vectors start at one and move slowly; 3e-3..1e-2 is the usual range",
)
LN_TUNING = MethodFamily(
    name="ln_tuning",
    summary="LayerNorm tuning: only LayerNorm/RMSNorm weights (and biases) and the head train.",
    default_lr=1e-2, build=build_ln_tuning, lr_grid=(3e-3, 1e-2, 3e-2), options={}, can_merge=False,
)
_ = Option  # options-free families still share the Option type for documentation
