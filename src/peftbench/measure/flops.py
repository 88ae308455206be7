"""FLOPs of one training step with torch's FlopCounterMode.

FlopCounterMode follows autograd, so frozen weights get no weight-gradient matmul and are not counted
as trained. On CPU the fused attention kernel has no formula in torch (2.13); we register torch's own
SDPA formulas for it, or attention would silently vanish from the count.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten


def _cpu_flash_forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_flash_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                        **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


CPU_ATTENTION_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_forward,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward,
}


def counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FORMULAS)


def forward_flops(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> int:
    with torch.no_grad(), counter() as fc:
        model(**batch)
    return fc.get_total_flops()


def train_step_flops(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(forward+backward FLOPs, forward-only FLOPs) for one batch; gradients are discarded."""
    with counter() as fc:
        out = model(**batch)
        fwd = fc.get_total_flops()
        out.loss.backward()
    total = fc.get_total_flops()
    model.zero_grad(set_to_none=True)
    return total, fwd
