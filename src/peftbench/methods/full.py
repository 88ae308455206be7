"""Full fine-tuning: every weight trains. The baseline every other method is compared with."""

from torch import nn

from peftbench.methods.base import BuildContext, MethodFamily


def build(model: nn.Module, options: dict, ctx: BuildContext) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


FAMILY = MethodFamily(
    name="full", summary="Full fine-tuning: all parameters train.", default_lr=2e-4, build=build, lr_grid=(5e-5, 1e-4, 2e-4),
    decoder_lr=3e-5, decoder_lr_grid=(3e-5, 1e-4, 3e-4),  # validation evidence: methods/evidence.py
    uses_peft=False,
)
