"""Method registry: families by name, the seed's named presets, and parsing of method strings.

A method string is a preset name (`LoRA-r8`) or a family with options
(`lora:r=2:alpha=4:targets=all-linear`, `prefix:tokens=8`, `full:lr=3e-5`).
"""

from __future__ import annotations

from torch import nn

from peftbench.config.spec import MethodSpec
from peftbench.errors import PeftbenchError
from peftbench.methods import bitfit, full, ia3, lora, prompts
from peftbench.methods.base import BuildContext, MethodFamily

FAMILIES: dict[str, MethodFamily] = {f.name: f for f in (
    full.FAMILY, lora.LORA, lora.LORA_ALL, lora.ADALORA, prompts.PREFIX, prompts.PTUNING, prompts.PROMPT,
    bitfit.FAMILY, ia3.IA3, lora.BITFIT_LORA, lora.DORA, lora.LOHA, lora.LOKR, lora.VERA, ia3.LN_TUNING,
)}


def _lora(r: int, alpha: float) -> tuple[str, dict]:
    return "lora", {"r": r, "alpha": alpha, "dropout": 0.1, "targets": "attention"}


# The seed notebook's twelve configurations, reproduced exactly (its "PromptTuning" is P-tuning with a
# 128-wide prompt encoder). Order matters: it is the default study's order.
SEED_PRESETS: dict[str, tuple[str, dict]] = {
    "Full": ("full", {}),
    "LoRA-r4": _lora(4, 16),
    "LoRA-r8": _lora(8, 16),
    "LoRA-r16": _lora(16, 32),
    "LoRA-r32": _lora(32, 64),
    "LoRA-AllLayers": ("lora_all", {"r": 8, "alpha": 16, "dropout": 0.1, "targets": "all-linear"}),
    "AdaLoRA": ("adalora", {"init_r": 12, "target_r": 8, "alpha": 16, "dropout": 0.1}),
    "PrefixTuning-len16": ("prefix", {"tokens": 16}),
    "PrefixTuning-len32": ("prefix", {"tokens": 32}),
    "PromptTuning-len16": ("ptuning", {"tokens": 16, "encoder_hidden": 128}),
    "PromptTuning-len32": ("ptuning", {"tokens": 32, "encoder_hidden": 128}),
    "BitFit": ("bitfit", {}),
}
EXTRA_PRESETS: dict[str, tuple[str, dict]] = {
    "IA3": ("ia3", {}),
    "BitFit+LoRA": ("bitfit_lora", {"r": 8, "alpha": 16}),
    "SoftPrompt-len16": ("prompt", {"tokens": 16}),
    "DoRA-r8": ("dora", {"r": 8, "alpha": 16}),
    "LoHa-r8": ("loha", {"r": 8, "alpha": 16}),
    "LoKr-r8": ("lokr", {"r": 8, "alpha": 16}),
    "VeRA-r256": ("vera", {"r": 256}),
    "LNTuning": ("ln_tuning", {}),
}
PRESETS = {**SEED_PRESETS, **EXTRA_PRESETS}
# A decoder study's default set (the `decoder-quick` preset): the families PEFT is mostly used with on causal
# LMs, full fine-tuning first as the baseline. BitFit is left out: most decoders (Llama, SmolLM2) have no biases.
# Prefix tuning starts from zero prefixes there: peft's random ones swamp the embedded decoder and collapsed it
# at every rate tried, zero ones learn (validation evidence in methods/evidence.py).
DECODER_PREFIX = "PrefixTuning-len16:init=zero"
DECODER_PRESETS = ["Full", "LoRA-r8", "LoRA-AllLayers", "IA3", DECODER_PREFIX, "SoftPrompt-len16"]


def family(name: str) -> MethodFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise PeftbenchError(f"unknown method family {name!r} (known: {', '.join(FAMILIES)})") from None


def parse_method(text: str, learning_rate: float | None = None, decoder: bool = False) -> MethodSpec:
    """Turn 'LoRA-r8' or 'lora:r=4:lr=1e-3' into a validated MethodSpec. `decoder`: the model is a causal LM,
    whose default learning rates are the family's decoder ones."""
    text = text.strip()
    if not text:
        raise PeftbenchError("empty method name")
    lower = {k.lower(): k for k in PRESETS}
    head, *rest = text.split(":")
    given: dict[str, str] = {}
    for item in rest:
        if "=" not in item:
            raise PeftbenchError(f"method option {item!r} in {text!r} must look like key=value")
        k, v = item.split("=", 1)
        given[k.strip()] = v.strip()
    lr = given.pop("lr", None)
    head_lr = given.pop("head_lr", None)
    if head.lower() in lower:
        preset = lower[head.lower()]
        fam_name, options = PRESETS[preset]
        options = {**options, **given}
        name = preset if not given else _method_text(preset, given)
    elif head in FAMILIES:
        fam_name, options, name = head, given, _method_text(head, given)
    else:
        raise PeftbenchError(f"unknown method {head!r}; presets: {', '.join(PRESETS)}; "
                             f"families: {', '.join(FAMILIES)}")
    fam = family(fam_name)
    resolved = fam.resolve_options(options)
    if lr is not None:
        try:
            learning_rate = float(lr)
        except ValueError:
            raise PeftbenchError(f"learning rate in {text!r} must be a number, got {lr!r}") from None
    if learning_rate is not None and not learning_rate > 0:
        raise PeftbenchError(f"learning rate must be positive, got {learning_rate}")
    default_lr = fam.default_lr_for(decoder)
    if learning_rate is not None and learning_rate != default_lr:
        # A learning rate other than the family's default is part of the name: results are grouped by
        # name, and two learning rates must never pass for two seeds of one method.
        name = f"{name}:lr={learning_rate:g}"
    learning_rate = learning_rate if learning_rate is not None else default_lr
    head_rate = head_lr_for(fam_name, learning_rate)
    if head_lr is not None:
        try:
            given_head = float(head_lr)
        except ValueError:
            raise PeftbenchError(f"head learning rate in {text!r} must be a number, got {head_lr!r}") from None
        if not given_head > 0:
            raise PeftbenchError(f"head learning rate must be positive, got {given_head}")
        if given_head != head_rate:
            name = f"{name}:head_lr={given_head:g}"
        head_rate = given_head
    return MethodSpec(name=name, family=fam_name, options=resolved, learning_rate=learning_rate,
                      head_learning_rate=head_rate)


# The classifier head (and an untrained pooler) is a dense layer trained from scratch by every method. It
# trains at the method's rate, capped here: AdamW steps sized for soft prompts or prefixes (1e-2 and up)
# throw a dense layer around. Its validation grid (methods/evidence.py, HEAD_CAP_EVIDENCE): 1e-3 and 3e-3 tie
# over the four methods it binds on, higher caps do worse; the one measured exception is P-tuning, whose head
# does better at the method's own rate (its evidence entry).
HEAD_LR_CAP = 3e-3


def default_head_lr(learning_rate: float) -> float:
    return min(learning_rate, HEAD_LR_CAP)


def head_lr_for(family_name: str, learning_rate: float) -> float:
    """The head's default rate for a method of this family at this rate (the one rule, for parsing and tuning)."""
    return learning_rate if family(family_name).head_at_method_lr else default_head_lr(learning_rate)


def _method_text(head: str, options: dict[str, str]) -> str:
    """The method string without its learning rate (which parse_method appends only when not the default)."""
    return ":".join([head, *(f"{k}={v}" for k, v in options.items())])


def parse_methods(texts: list[str], learning_rate: float | None = None, decoder: bool = False) -> list[MethodSpec]:
    if not texts:
        raise PeftbenchError("--methods names no method (give presets or family:key=value specs, or leave "
                             "it out for the default set)")
    specs = [parse_method(t, learning_rate, decoder) for t in texts]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PeftbenchError(f"method {dupes[0]!r} is listed twice")
    return specs


def build_model(base: nn.Module, spec: MethodSpec, ctx: BuildContext) -> nn.Module:
    """Apply a method to a freshly loaded base model; returns the model to train."""
    fam = family(spec.family)
    return fam.build(base, dict(spec.options), ctx)


__all__ = ["DECODER_PREFIX", "DECODER_PRESETS", "FAMILIES", "HEAD_LR_CAP", "PRESETS", "SEED_PRESETS",
           "EXTRA_PRESETS", "BuildContext", "MethodFamily", "build_model", "family", "parse_method", "parse_methods"]
