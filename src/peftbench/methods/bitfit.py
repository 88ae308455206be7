"""BitFit (Ben Zaken et al., 2022): train only bias terms and the classification head.

peft has no BitFit, so this is the one method we build by hand: freeze everything, then unfreeze
every parameter named `*.bias` plus the head (a causal LM has no head: biases alone).
"""

from torch import nn

from peftbench.errors import PeftbenchError
from peftbench.methods.base import BuildContext, MethodFamily
from peftbench.models.loading import head_module_names


def build(model: nn.Module, options: dict, ctx: BuildContext) -> nn.Module:
    heads = set(head_module_names(model))
    biases = [n for n, _ in model.named_parameters()
              if n.endswith(".bias") and heads.isdisjoint(n.split("."))]
    if not biases:
        # Llama-family decoders (SmolLM2, Mistral, Qwen's MLPs) have no bias anywhere: BitFit would be a
        # head-only (or, for a causal LM, an empty) method passing under BitFit's name.
        what = "nothing but the head" if heads else "nothing"
        raise PeftbenchError(f"bitfit: {type(model).__name__} has no bias terms, so BitFit would train "
                             f"{what}; use lora or ia3")
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith(".bias") or not heads.isdisjoint(name.split(".")))
    return model


FAMILY = MethodFamily(
    name="bitfit", summary="BitFit: only bias terms and the classifier head train (hand-built; not in peft).",
    default_lr=3e-3, build=build, lr_grid=(1e-3, 3e-3, 1e-2), uses_peft=False,
)
