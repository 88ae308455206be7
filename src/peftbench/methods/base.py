"""What a method family is: options with defaults, a default learning rate, and a builder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from peftbench.errors import PeftbenchError


@dataclass(frozen=True)
class BuildContext:
    """Facts a builder needs beyond its options: known only once data and schedule are fixed."""

    total_steps: int
    num_labels: int
    task_type: str = "SEQ_CLS"  # peft's TaskType name: SEQ_CLS (a classifier head) or CAUSAL_LM (generate)
    decoder: bool = False  # the base is a decoder-only LM (the task layer says so: tasks.model_is_decoder)


@dataclass(frozen=True)
class Option:
    default: Any
    kind: type
    help: str
    minimum: float | None = None  # values must be > minimum when exclusive else >=
    exclusive: bool = False
    choices: tuple | None = None


@dataclass(frozen=True)
class MethodFamily:
    """One family of fine-tuning methods, e.g. LoRA. `build` turns options into a ready model."""

    name: str
    summary: str
    default_lr: float
    build: Callable[[nn.Module, dict[str, Any], BuildContext], nn.Module]
    options: dict[str, Option] = field(default_factory=dict)
    can_merge: bool = False
    uses_peft: bool = True
    lr_note: str = ""
    lr_grid: tuple[float, ...] = ()  # the learning rates `--tune` tries; empty: default / 3, default, default x 3
    head_at_method_lr: bool = False  # the head trains at the method's own rate, uncapped (chosen on validation)
    # A causal LM wants other rates than an encoder (its own scale, far fewer steps on a CPU): its default and
    # --tune grid. None / empty: the encoder's.
    decoder_lr: float | None = None
    decoder_lr_grid: tuple[float, ...] = ()

    def default_lr_for(self, decoder: bool = False) -> float:
        """The default learning rate on an encoder, or on a decoder (causal LM)."""
        return self.decoder_lr if decoder and self.decoder_lr is not None else self.default_lr

    def lr_candidates(self, decoder: bool = False) -> list[float]:
        """The learning rates a tuned study tries for this family, the default first (it is the likeliest
        winner, so successive halving stops the others early)."""
        default = self.default_lr_for(decoder)
        grid = (self.decoder_lr_grid if decoder and self.decoder_lr is not None else self.lr_grid) or (
            default, default / 3, default * 3)
        return [default, *sorted(v for v in grid if v != default)]

    def resolve_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults, coerce types, reject unknown or out-of-range values with one clear line."""
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise PeftbenchError(f"method {self.name!r} has no option {unknown[0]!r} (options: {known})")
        out: dict[str, Any] = {}
        for key, opt in self.options.items():
            value = given.get(key, opt.default)
            if value is not None and opt.kind is not str and isinstance(value, str):
                value = _coerce(self.name, key, value, opt.kind)
            if opt.kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if opt.choices and value not in opt.choices:
                raise PeftbenchError(f"{self.name} option {key} must be one of {', '.join(map(str, opt.choices))},"
                                     f" got {value!r}")
            if opt.minimum is not None and value is not None:
                too_small = value <= opt.minimum if opt.exclusive else value < opt.minimum
                if too_small:
                    bound = f"> {opt.minimum}" if opt.exclusive else f">= {opt.minimum}"
                    raise PeftbenchError(f"{self.name} option {key} must be {bound}, got {value}")
            out[key] = value
        return out


def _coerce(family: str, key: str, value: str, kind: type) -> Any:
    try:
        if kind is bool:
            if value.lower() in ("1", "true", "yes"):
                return True
            if value.lower() in ("0", "false", "no"):
                return False
            raise ValueError
        if kind is list:
            return [v for v in value.split("+") if v]
        return kind(value)
    except ValueError:
        raise PeftbenchError(f"{family} option {key} must be {kind.__name__}, got {value!r}") from None


def targets_option(default: str = "attention") -> Option:
    return Option(default, str, "modules to adapt: 'attention' (q/k/v found in the model, and the attention "
                  "output on a decoder), 'all-linear', "
                  "or names joined by '+', e.g. query+value")
