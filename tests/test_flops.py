"""FLOP counting: backward ~2x forward for trained weights, less for adapters, attention never lost."""

import torch

from peftbench.data.prepared import collate
from peftbench.measure.flops import forward_flops, train_step_flops
from peftbench.methods import BuildContext, build_model, parse_method
from peftbench.models.loading import load_classifier


def _batch(n=4, t=24):
    import numpy as np

    rng = np.random.default_rng(0)
    ids = [rng.integers(1000, 2000, size=t) for _ in range(n)]
    return collate(ids, np.zeros(n, dtype=np.int64), 0)


def _model(path, method):
    torch.manual_seed(0)
    return build_model(load_classifier(path, 2), parse_method(method), BuildContext(100, 2))


def test_full_finetuning_is_three_times_forward(tiny_model):
    m = _model(tiny_model, "Full")
    m.train()
    total, fwd = train_step_flops(m, _batch())
    # Embedding lookups cost no FLOPs; every matmul's backward is two matmuls of the same size.
    assert 2.9 < total / fwd < 3.01


def test_lora_counts_less_than_full(tiny_model):
    full, _ = train_step_flops(_model(tiny_model, "Full").train(), _batch())
    lora, lora_fwd = train_step_flops(_model(tiny_model, "LoRA-r4").train(), _batch())
    assert lora < 0.8 * full  # frozen weights get no weight-gradient matmuls
    assert 1.8 < lora / lora_fwd < 2.5


def test_attention_flops_present_on_cpu_fused_path(tiny_model):
    """In eval mode SDPA takes the fused CPU kernel; our formula must count it like eager attention."""
    sdpa = load_classifier(tiny_model, 2).eval()
    eager = load_classifier(tiny_model, 2)
    eager.config._attn_implementation = "eager"
    for layer in eager.bert.encoder.layer:
        layer.attention.self.config._attn_implementation = "eager"
    eager.eval()
    b = {k: v for k, v in _batch().items() if k != "labels"}
    n_sdpa, n_eager = forward_flops(sdpa, b), forward_flops(eager, b)
    # attention (QK^T and AV) for 2 layers: 2 * 2 * B*T*T*H*d
    attention = 2 * 2 * 2 * 4 * 24 * 24 * 32
    assert n_sdpa >= n_eager - 1 and n_sdpa > 0
    with torch.no_grad():
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as plain:
            sdpa(**b)
    assert n_sdpa - plain.get_total_flops() == attention  # exactly what torch alone missed
