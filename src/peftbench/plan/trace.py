"""Training steps traced under FakeTensorMode: every tensor has its shape and dtype but no memory, so a 3B
model's step costs seconds and no gigabytes. A dispatch mode follows each storage from its creation to its
release and keeps the peak of live bytes in each phase of the step (forward, backward, optimizer), split by
what the bytes are (weights, gradients, optimizer states, activations); the same mode counts the step's
FLOPs by FlopCounterMode's formulas, as a trial counts them (measure/flops.py), attention's (quadratic in the
length) apart from the rest.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from peftbench.measure import flops as fl

CATEGORIES = ("weights", "gradients", "optimizer", "activations")
PHASES = ("forward", "backward", "optimizer")
aten = torch.ops.aten
# FLOPs that grow with the square of the sequence length (attention scores and their use); the rest grows
# with the length itself (every linear layer, the loss).
QUADRATIC_OPS = {aten.bmm, aten.baddbmm, *fl.CPU_ATTENTION_FORMULAS,
                 aten._scaled_dot_product_efficient_attention, aten._scaled_dot_product_flash_attention,
                 aten._scaled_dot_product_cudnn_attention,
                 aten._scaled_dot_product_efficient_attention_backward,
                 aten._scaled_dot_product_flash_attention_backward,
                 aten._scaled_dot_product_cudnn_attention_backward}


def _flop_formulas() -> dict:
    """torch's FLOP formulas by op (FlopCounterMode's own registry) with the CPU attention formulas trials
    register (measure/flops.py), so a trace counts what a trial's FlopCounterMode counts."""
    from torch.utils.flop_counter import flop_registry, shape_wrapper

    return {**flop_registry, **{op: shape_wrapper(f) for op, f in fl.CPU_ATTENTION_FORMULAS.items()}}


class LiveBytes(TorchDispatchMode):
    """Live tensor bytes by category, and their peak in each phase. A storage is counted once however many
    views it has, and leaves the count when it is freed (a weakref finalizer on the storage). With
    `count_flops`, each op's FLOPs are counted on the way by torch's formulas (one dispatch mode rather
    than two: FlopCounterMode's module tracking doubled a trace's cost)."""

    def __init__(self, count_flops: bool = False) -> None:
        super().__init__()
        self.live = dict.fromkeys(CATEGORIES, 0)
        self.phase = "forward"
        self.peaks: dict[str, tuple[int, dict[str, int]]] = {}
        self._category: dict[int, tuple[str, int]] = {}
        self.formulas = _flop_formulas() if count_flops else {}
        self.flops = self.quadratic_flops = 0

    def track(self, t, category: str = "activations") -> None:
        if not isinstance(t, torch.Tensor):
            return
        st = t.untyped_storage()
        key = st._cdata
        if key in self._category:
            if category != "activations":
                self.move(key, category)
            return
        n = st.nbytes()
        self._category[key] = (category, n)
        self.live[category] += n
        weakref.finalize(st, self._free, key)
        self._maybe_peak()

    def move(self, key: int, category: str) -> None:
        old, n = self._category[key]
        self.live[old] -= n
        self.live[category] += n
        self._category[key] = (category, n)

    def mark(self, t, category: str) -> None:
        self.track(t, category)

    def _free(self, key: int) -> None:
        category, n = self._category.pop(key, (None, 0))
        if category is not None:
            self.live[category] -= n

    def _maybe_peak(self) -> None:
        total = sum(self.live.values())
        if total > self.peaks.get(self.phase, (-1, {}))[0]:
            self.peaks[self.phase] = (total, dict(self.live))

    def enter(self, phase: str) -> None:
        self.phase = phase
        self._maybe_peak()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        for t in tree_leaves(out):
            self.track(t)
        formula = self.formulas.get(func._overloadpacket)
        if formula is not None:
            n = formula(*args, **kwargs, out_val=out)
            self.flops += n
            if func._overloadpacket in QUADRATIC_OPS:
                self.quadratic_flops += n
        return out


@dataclass
class StepTrace:
    """One traced training step at a batch shape (the second step: optimizer states already exist)."""

    batch_size: int
    seq_len: int
    # per phase: the peak bytes, and their split by category at that moment
    phase_peaks: dict[str, tuple[int, dict[str, int]]] = field(default_factory=dict)
    flops: int = 0  # forward + backward of the step (FlopCounterMode; frozen weights get no weight gradient)
    forward_flops: int = 0
    quadratic_flops: int = 0  # the part that grows with the square of the length (attention)

    @property
    def peak_phase(self) -> str:
        return max(self.phase_peaks, key=lambda p: self.phase_peaks[p][0])

    @property
    def peak_bytes(self) -> int:
        return self.phase_peaks[self.peak_phase][0]

    @property
    def split_bytes(self) -> dict[str, int]:
        return dict(self.phase_peaks[self.peak_phase][1])

    def flops_at(self, batch_size: int, seq_len: int) -> float:
        """The step's FLOPs at another shape: per row, the linear part grows with the length and the
        quadratic part with its square."""
        linear = (self.flops - self.quadratic_flops) / (self.batch_size * self.seq_len)
        quadratic = self.quadratic_flops / (self.batch_size * self.seq_len ** 2)
        return batch_size * (linear * seq_len + quadratic * seq_len ** 2)


def fake_copy(model: nn.Module):
    """Give a meta-device model fake tensors in place (a FakeTensorMode is returned with it): each parameter
    and buffer is replaced once, so weights tied on the meta device stay tied."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    done: dict[int, torch.Tensor] = {}
    with mode:
        for module in model.modules():
            for name, p in list(module._parameters.items()):
                if p is not None:
                    if id(p) not in done:
                        done[id(p)] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype), p.requires_grad)
                    module._parameters[name] = done[id(p)]
            for name, b in list(module._buffers.items()):
                if b is not None:
                    if id(b) not in done:
                        done[id(b)] = torch.zeros(b.shape, dtype=b.dtype)
                    module._buffers[name] = done[id(b)]
    return model, mode


def fake_batch(batch_size: int, seq_len: int, causal_lm: bool) -> dict[str, torch.Tensor]:
    ids = torch.zeros(batch_size, seq_len, dtype=torch.long)
    labels = torch.zeros(*((batch_size, seq_len) if causal_lm else (batch_size,)), dtype=torch.long)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def trace_train_step(model: nn.Module, mode, batch_size: int, seq_len: int, causal_lm: bool,
                     bf16: bool = False) -> StepTrace:
    """One AdamW step as trial/train.py takes it (forward, backward, gradient clipping, fused AdamW,
    zero_grad) with the optimizer states already there, as from the second step on; its FLOPs counted on
    the way."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    with mode:
        batch = fake_batch(batch_size, seq_len, causal_lm)
        opt = torch.optim.AdamW(trainable, lr=1e-3, fused=True)
        if trainable:  # create the states (exp_avg, exp_avg_sq) without a forward pass
            for p in trainable:
                p.grad = torch.zeros_like(p)
            opt.step()
            opt.zero_grad(set_to_none=True)
        tracker = LiveBytes(count_flops=True)
        seen: set[int] = set()
        for p in [*model.parameters(), *model.buffers()]:
            if id(p) not in seen:
                seen.add(id(p))
                tracker.track(p, "weights")
        for state in opt.state.values():
            for value in state.values():
                tracker.track(value, "optimizer")
        hooks = [p.register_post_accumulate_grad_hook(lambda q: tracker.mark(q.grad, "gradients"))
                 for p in trainable]
        model.train()
        with tracker:
            fwd = _step(model, opt, trainable, batch, bf16, tracker)
        for h in hooks:
            h.remove()
        del opt
    return StepTrace(batch_size, seq_len, dict(tracker.peaks), tracker.flops, fwd, tracker.quadratic_flops)


def _step(model, opt, trainable, batch, bf16: bool, tracker: LiveBytes) -> int:
    tracker.enter("forward")
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch).loss
    forward = tracker.flops
    tracker.enter("backward")
    loss.backward()
    del loss
    tracker.enter("optimizer")
    if trainable:
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
    opt.zero_grad(set_to_none=True)
    return forward


def trace_inference(model: nn.Module, mode, batch_size: int, seq_len: int, causal_lm: bool) -> int:
    """Peak live bytes of one no-grad forward at a batch shape: the inference figure's activations."""
    with mode:
        batch = fake_batch(batch_size, seq_len, causal_lm)
        batch.pop("labels")
        tracker = LiveBytes()
        model.eval()
        with tracker, torch.no_grad():
            model(**batch)
        model.train()
    return max(total for total, _ in tracker.peaks.values())
