"""The LoRA family through peft: LoRA, LoRA on all linear layers, DoRA, BitFit+LoRA, LoHa, LoKr, VeRA, AdaLoRA."""

from __future__ import annotations

from typing import Any

from torch import nn

from peftbench.errors import PeftbenchError
from peftbench.methods.base import BuildContext, MethodFamily, Option, targets_option
from peftbench.models.loading import attention_targets, head_module_names


def resolve_targets(model: nn.Module, targets: str) -> list[str] | str:
    if targets == "attention":
        return attention_targets(model)
    if targets == "all-linear":
        return "all-linear"
    names = [t for t in targets.split("+") if t]
    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()} | {n for n, _ in model.named_modules()}
    missing = [t for t in names if t not in present and not any(n.endswith("." + t) for n in present)]
    if missing:
        raise PeftbenchError(f"target module {missing[0]!r} is not in {type(model).__name__}")
    return names


TASK_TYPES = ("SEQ_CLS", "CAUSAL_LM")


def peft_config(ctx: BuildContext, peft_config_cls, **kwargs):
    """A peft config for the trial's task: SEQ_CLS trains and saves the classifier head with the adapter,
    CAUSAL_LM has no head (and makes prompt methods mask their virtual tokens out of the loss)."""
    from peft import TaskType

    if ctx.task_type not in TASK_TYPES:
        raise PeftbenchError(f"task type must be one of {', '.join(TASK_TYPES)}, got {ctx.task_type!r}")
    return peft_config_cls(task_type=TaskType[ctx.task_type], **kwargs)


def _wrap(model: nn.Module, config) -> nn.Module:
    """get_peft_model, with every head module trained and saved: peft adds the classifier by itself, and an
    untrained pooler (models.untrained_pooler) joins it so that no method classifies through a frozen
    random projection. A causal LM has no head module, so nothing joins."""
    from peft import get_peft_model

    extra = [n for n in head_module_names(model) if n not in ("classifier", "score")]
    if extra:
        config.modules_to_save = sorted(set(config.modules_to_save or []) | set(extra))
    try:
        return get_peft_model(model, config)
    except (TypeError, ValueError) as exc:  # e.g. LoHa/LoKr on GPT-2's Conv1D layers
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise PeftbenchError(f"{str(config.peft_type.value).lower()} on {type(model).__name__}: "
                             f"{lines[0]}") from None


def build_lora(model: nn.Module, o: dict[str, Any], ctx: BuildContext, *, bias: str = "none",
               use_dora: bool = False) -> nn.Module:
    from peft import LoraConfig

    cfg = peft_config(ctx, LoraConfig, r=o["r"], lora_alpha=o["alpha"], lora_dropout=o["dropout"],
                   target_modules=resolve_targets(model, o["targets"]), bias=bias, use_dora=use_dora)
    return _wrap(model, cfg)


def build_adalora(model: nn.Module, o: dict[str, Any], ctx: BuildContext) -> nn.Module:
    from peft import AdaLoraConfig

    # AdaLoRA prunes ranks on a schedule inside the run: a warm-up without pruning (tinit), a budget that
    # shrinks every deltaT steps, then a final phase at the target budget (tfinal). In a short run the
    # phases must be real fractions of it: squeezed into the first steps, pruning starts while the
    # orthogonality penalty still dominates the loss and the adapter never learns.
    total = max(ctx.total_steps, 10)
    tinit, tfinal = int(o["warmup_frac"] * total), int(o["final_frac"] * total)
    if tinit + tfinal >= total:
        raise PeftbenchError(f"adalora: warmup_frac + final_frac must leave steps to prune in, got "
                             f"{o['warmup_frac']} + {o['final_frac']}")
    cfg = peft_config(ctx, AdaLoraConfig, init_r=o["init_r"], target_r=o["target_r"], lora_alpha=o["alpha"],
                   lora_dropout=o["dropout"], target_modules=resolve_targets(model, o["targets"]),
                   total_step=total, tinit=tinit, tfinal=tfinal,
                   deltaT=max(1, (total - tinit - tfinal) // 10), orth_reg_weight=o["orth_reg"])
    return _wrap(model, cfg)


def build_loha(model: nn.Module, o: dict[str, Any], ctx: BuildContext) -> nn.Module:
    from peft import LoHaConfig

    return _wrap(model, peft_config(ctx, LoHaConfig, r=o["r"], alpha=o["alpha"],
                                    target_modules=resolve_targets(model, o["targets"])))


def build_lokr(model: nn.Module, o: dict[str, Any], ctx: BuildContext) -> nn.Module:
    from peft import LoKrConfig

    return _wrap(model, peft_config(ctx, LoKrConfig, r=o["r"], alpha=o["alpha"],
                                    target_modules=resolve_targets(model, o["targets"])))


def build_vera(model: nn.Module, o: dict[str, Any], ctx: BuildContext) -> nn.Module:
    from peft import VeraConfig

    return _wrap(model, peft_config(ctx, VeraConfig, r=o["r"],
                                    target_modules=resolve_targets(model, o["targets"])))


def lora_options(r: int = 8, alpha: float = 16.0, targets: str = "attention") -> dict[str, Option]:
    return {
        "r": Option(r, int, "rank of the update", minimum=1),
        "alpha": Option(alpha, float, "scaling numerator (update scaled by alpha/r)", minimum=0, exclusive=True),
        "dropout": Option(0.1, float, "dropout on the LoRA input", minimum=0),
        "targets": targets_option(targets),
    }


LORA = MethodFamily(
    name="lora", summary="LoRA: low-rank updates on the chosen linear layers (default: attention q/k/v, and o on "
    "a decoder).",
    default_lr=2e-3, build=build_lora, options=lora_options(), lr_grid=(1e-3, 2e-3, 5e-3), can_merge=True,
    decoder_lr=5e-3, decoder_lr_grid=(5e-4, 2e-3, 5e-3),
)
LORA_ALL = MethodFamily(
    name="lora_all", summary="LoRA on every linear layer except the head (peft's 'all-linear').",
    default_lr=1e-3, build=build_lora, options=lora_options(targets="all-linear"), lr_grid=(1e-3, 2e-3, 5e-3), can_merge=True,
    decoder_lr=3e-3, decoder_lr_grid=(3e-4, 1e-3, 3e-3),  # validation evidence: methods/evidence.py
)
DORA = MethodFamily(
    name="dora", summary="DoRA: LoRA with a learned magnitude per output feature.",
    default_lr=2e-3, build=lambda m, o, c: build_lora(m, o, c, use_dora=True), options=lora_options(), lr_grid=(1e-3, 2e-3, 5e-3),
    can_merge=True,
)
BITFIT_LORA = MethodFamily(
    name="bitfit_lora", summary="BitFit + LoRA: LoRA updates and every bias term train together.",
    default_lr=2e-3, build=lambda m, o, c: build_lora(m, o, c, bias="all"), options=lora_options(), lr_grid=(1e-3, 2e-3, 5e-3),
    can_merge=True,
)
ADALORA = MethodFamily(
    name="adalora", summary="AdaLoRA: LoRA whose rank budget is re-allocated across layers while training.",
    default_lr=1e-2, build=build_adalora, lr_grid=(2e-3, 5e-3, 1e-2), can_merge=True,
    options={
        "init_r": Option(12, int, "initial rank of each layer (the trainable count reported)", minimum=1),
        "target_r": Option(8, int, "average rank after pruning", minimum=1),
        "alpha": Option(16.0, float, "scaling numerator", minimum=0, exclusive=True),
        "dropout": Option(0.1, float, "dropout on the adapter input", minimum=0),
        "targets": targets_option(),
        "warmup_frac": Option(0.3, float, "share of the steps trained before pruning starts (tinit)", minimum=0),
        "final_frac": Option(0.3, float, "share of the steps trained at the final budget (tfinal)", minimum=0),
        "orth_reg": Option(0.1, float, "weight of the orthogonality penalty (peft's default 0.5)", minimum=0),
    },
)
LOHA = MethodFamily(
    name="loha", summary="LoHa: low-rank Hadamard-product updates.", default_lr=5e-3, build=build_loha, lr_grid=(2e-3, 5e-3, 1e-2),
    options={k: v for k, v in lora_options().items() if k != "dropout"}, can_merge=True,
)
LOKR = MethodFamily(
    name="lokr", summary="LoKr: low-rank Kronecker-product updates.", default_lr=5e-3, build=build_lokr, lr_grid=(2e-3, 5e-3, 1e-2),
    options={k: v for k, v in lora_options().items() if k != "dropout"}, can_merge=True,
)
VERA = MethodFamily(
    name="vera", summary="VeRA: frozen shared random low-rank matrices, trained scaling vectors.",
    default_lr=1e-2, build=build_vera, lr_grid=(3e-3, 1e-2, 3e-2), can_merge=True,
    options={"r": Option(256, int, "rank of the shared random matrices", minimum=1),
             "targets": targets_option()},
)
