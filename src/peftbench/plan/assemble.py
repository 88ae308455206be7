"""One plan: for each method, the exact parameter accounting, the predicted training memory (and whether it
fits), the predicted time per step and per trial, inference memory, adapter size and mergeability, on the
batch shapes the trial itself would train on (its data read and batched as trial/train.py batches it, when
the model has a tokenizer; else every row at --max-length)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from peftbench.config.spec import DataSpec, MethodSpec, TrainSpec
from peftbench.errors import PeftbenchError
from peftbench.methods import BuildContext, family
from peftbench.plan import memory as mem
from peftbench.plan import timing
from peftbench.plan.meta_model import ModelSource, build_on_meta, config_summary, model_source
from peftbench.plan.shallow import Tracer
from peftbench.plan.trace import fake_copy

INFERENCE_BATCH = 32  # the throughput pass's batch (measure/inference.py)


@dataclass(frozen=True)
class PlanRequest:
    model: str
    data: DataSpec
    train: TrainSpec
    methods: list[MethodSpec]
    device: str = "cpu"  # where the trials would run: cpu | cuda
    gpu_memory_mb: float | None = None
    device_tflops: float | None = None
    device_bandwidth_gbs: float | None = None
    calibrate: bool = True
    # wall seconds of real calibration steps one plan may spend (None: no limit); each family's first method
    # is calibrated first, and past the budget a method not yet in the calibration cache takes the seconds
    # per FLOP of a calibrated one (its family's first: LoRA's ranks differ by under 2% in seconds per
    # step), and the next plan calibrates it. Keeps a plan cheap, also on a busy machine.
    calibration_budget_s: float | None = 5.0
    inference: bool = True  # trace the inference pass too (a study's plan needs only training)


@dataclass
class Shapes:
    """The (batch, length) of every training step of one trial, all epochs, in order."""

    steps: list[tuple[int, int]]
    source: str  # how they were found
    num_labels: int
    eval_length: int
    representative: tuple[int, int] = (0, 0)
    peak: tuple[int, int] = (0, 0)
    notes: list[str] = field(default_factory=list)


def step_shapes(req: PlanRequest, data=None) -> Shapes:
    """Batch shapes as the trial would see them: the task's prepared data (`data`, when the caller has it),
    the first train_size rows of the training pool, length-bucketed batches drawn by the trial's own seeded
    generator (seed 0)."""
    from peftbench.data.prepared import train_batches
    from peftbench.tasks import task_of

    spec = req.train
    try:
        if data is None:
            data = task_of(req.data).prepare_data(req.data, req.model, spec.train_size)
    except PeftbenchError as exc:
        n = spec.train_size
        full = [(spec.batch_size, req.data.max_length)] * (n // spec.batch_size)
        if n % spec.batch_size:
            full.append((n % spec.batch_size, req.data.max_length))
        shapes = Shapes(full * spec.epochs, f"no data read ({exc}): every row taken at --max-length "
                        f"{req.data.max_length} tokens, an upper bound", 2, req.data.max_length)
        return _mark(shapes)
    train_set = data.train_pool.take(spec.train_size)
    rng = np.random.default_rng(0)
    steps = [tuple(b["input_ids"].shape) for _ in range(spec.epochs)
             for b in train_batches(train_set, spec.batch_size, rng, data.pad_token_id)]
    order = np.argsort(train_set.lengths, kind="stable")
    mid = max(0, len(order) // 2 - spec.batch_size // 2)
    rep_len = int(train_set.lengths[order[mid:mid + spec.batch_size]].max())
    shapes = Shapes(steps, f"the trial's own batches: {len(train_set)} rows of {req.data.source!r}, "
                    f"length-bucketed", data.num_labels, int(np.max(data.test.lengths)))
    shapes.representative = (min(spec.batch_size, len(train_set)), rep_len)
    return _mark(shapes)


def _mark(shapes: Shapes) -> Shapes:
    shapes.peak = max(shapes.steps, key=lambda bs: (bs[0] * bs[1], bs[1]))
    if shapes.representative == (0, 0):
        shapes.representative = shapes.peak
    return shapes


def check_request(req: PlanRequest) -> None:
    if req.device not in ("cpu", "cuda"):
        raise PeftbenchError(f"--device must be cpu or cuda for a plan, got {req.device!r}")
    if req.train.load_in_4bit and req.device == "cpu":
        raise PeftbenchError("--load-in-4bit needs --device cuda (bitsandbytes stores 4-bit weights on a "
                             "GPU)")
    for spec in req.methods:
        if req.train.load_in_4bit and spec.family == "full":
            raise PeftbenchError("full: a 4-bit base cannot be fine-tuned in full; use a PEFT method or "
                                 "leave out --load-in-4bit")


def make_plan(req: PlanRequest, data=None, keep_going: bool = False) -> dict[str, Any]:
    """The whole plan as plain data (the JSON output; the table prints the same fields). `data`: the setup's
    prepared data, when the caller has it. `keep_going`: a method that cannot be planned gets a row holding
    only its `error` (a study's plan must never stop the study); otherwise its error stops the plan."""
    from peftbench.tasks import task_of

    check_request(req)
    source = model_source(req.model)
    task = task_of(req.data)
    shapes = step_shapes(req, data)
    causal = task.peft_task_type == "CAUSAL_LM"
    decoder = _is_decoder(source)
    ctx = BuildContext(total_steps=len(shapes.steps), num_labels=shapes.num_labels,
                       task_type=task.peft_task_type, decoder=decoder)
    probe = timing.probe_gflops() if req.device == "cpu" or torch.cuda.is_available() else None
    spent = timing.Spent(req.calibration_budget_s)
    by_index: dict[int, dict] = {}
    for i in _family_first(req.methods):
        spec = req.methods[i]
        try:
            by_index[i] = plan_method(source, spec, ctx, shapes, req, causal, probe, spent)
        except Exception as exc:  # noqa: BLE001 - any failure of a method's plan (peft, the trace) lands here
            if not keep_going:
                raise
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            by_index[i] = {"method": spec.name, "family": spec.family,
                           "error": f"{type(exc).__name__}: {first}"}
    rows = [by_index[i] for i in range(len(req.methods))]
    if req.calibrate:
        from peftbench.plan.calibrate import release_bases

        release_bases()
    planned = [r for r in rows if "error" not in r]
    timing.fill_from_calibrated(planned)
    timed = [r["time"]["trial_s"] for r in planned if r["time"]["trial_s"] is not None]
    return {"model": req.model, "shape": config_summary(source), "device": req.device,
            "task": task.name, "batches": {"steps": len(shapes.steps), "peak_shape": list(shapes.peak),
                                           "representative_shape": list(shapes.representative),
                                           "from": shapes.source},
            "units": UNITS, "methods": rows,
            "total_train_s": sum(timed) if len(timed) == len(rows) else None,
            "probe_gflops": probe}


def _family_first(methods: list[MethodSpec]) -> list[int]:
    """Indices in the order a plan calibrates them: each family's first method, then the rest."""
    seen: set[str] = set()
    first = [i for i, m in enumerate(methods) if not (m.family in seen or seen.add(m.family))]
    return first + [i for i in range(len(methods)) if i not in first]


UNITS = {"params": "parameters (count)", "memory": "MiB (2^20 bytes)", "time": "seconds",
         "adapter_bytes": "bytes", "flops": "FLOPs (forward + backward)"}


def _is_decoder(source: ModelSource) -> bool:
    from peftbench.models.loading import _config_is_decoder

    return _config_is_decoder(source.config)


def plan_method(source: ModelSource, spec: MethodSpec, ctx: BuildContext, shapes: Shapes, req: PlanRequest,
                causal: bool, probe: float | None, spent: timing.Spent | None = None) -> dict[str, Any]:
    from peftbench.measure.params import saved_parameter_count

    ckpt, bf16 = req.train.gradient_checkpointing, req.train.bf16 or req.train.load_in_4bit
    build = build_on_meta(source, spec, ctx, ckpt)
    quantized = mem.quantized_params(build.model) if req.train.load_in_4bit else 0
    model, mode = fake_copy(build.model)
    with mode:
        saved = saved_parameter_count(model)
    tracer = Tracer(model, mode, source, lambda s: build_on_meta(s, spec, ctx, ckpt).model, causal, bf16)
    pb, ps = shapes.peak
    peak_trace = tracer.train(pb, ps)
    extra = mem.trial_extra_bytes(source.config, req.data.task, ctx.decoder)
    plan = mem.memory_plan(peak_trace, req.device, quantized, extra, len(shapes.steps))
    if req.gpu_memory_mb is not None:
        other_b = max(1, pb // 2) if pb > 1 else 2
        other = mem.memory_plan(tracer.train(other_b, ps), req.device, quantized, extra, len(shapes.steps))
        plan = mem.with_limit(plan, req.gpu_memory_mb, pb, other, other_b)
    # FLOPs of every step from the traced one: per row, linear in the length plus attention's square
    train_flops = float(sum(peak_trace.flops_at(b, s) for b, s in shapes.steps))
    rep_flops = peak_trace.flops_at(*shapes.representative)
    step_time = _step_time(source, spec, ctx, shapes, req, rep_flops, peak_trace, probe,
                           spent or timing.Spent(None))
    trial_s = None if step_time.seconds is None else step_time.seconds * train_flops / max(rep_flops, 1.0)
    inference = None
    if req.inference:
        inference = round(plan.weights_mb + plan.quant_state_mb
                          + tracer.inference(INFERENCE_BATCH, shapes.eval_length) / mem.MB, 1)
    param_bytes = 4
    return {"method": spec.name, "family": spec.family,
            "params": {k: build.counts[k] for k in ("trainable_params", "head_params", "adapter_params",
                                                    "total_params", "base_params")} | {"saved_params": saved},
            "memory": plan.as_dict(),
            "time": {"step_s": None if trial_s is None else trial_s / len(shapes.steps), "trial_s": trial_s,
                     "steps": len(shapes.steps), "how": step_time.how, "note": step_time.note},
            "flops": {"peak_step": peak_trace.flops, "representative_step": rep_flops, "train": train_flops},
            "traced": "depth 2 and 3, extrapolated" if tracer.extrapolating else "full depth",
            "inference_mb": inference, "adapter_bytes": saved * param_bytes,
            "can_merge": family(spec.family).can_merge}


def _step_time(source, spec, ctx, shapes, req, rep_flops: float, peak_trace, probe,
               spent: timing.Spent) -> timing.StepTime:
    """Seconds of the representative step: calibrated on this machine when the trials would run here (or
    "pending" when the calibration budget is spent: timing.fill_from_calibrated), else (or for a copy too
    big to train here) a roofline estimate from peak figures."""
    here = req.device == "cpu" or torch.cuda.is_available()
    if here and req.calibrate:
        from peftbench.plan.calibrate import calibrated_step_seconds

        with spent.timed():
            seconds = calibrated_step_seconds(source, spec, ctx, shapes.representative, req, probe,
                                              may_measure=spent.left())
        if seconds == "pending":
            return timing.StepTime(None, "pending")
        if seconds is not None:
            return timing.StepTime(seconds, "calibrated")
    tflops = req.device_tflops or (probe * 0.5 / 1000 if here and probe else None)
    moved = 3 * peak_trace.split_bytes.get("weights", 0) + 2 * peak_trace.split_bytes.get("activations", 0)
    seconds = timing.roofline_seconds(rep_flops, moved, tflops, req.device_bandwidth_gbs)
    note = ("roofline estimate: FLOPs over --device-tflops" + (" and bytes over --device-bandwidth"
            if req.device_bandwidth_gbs else "")) if req.device_tflops else (
        "roofline estimate: half this machine's measured GEMM rate" if seconds is not None else
        "no time: the device is not here; give --device-tflops (and --device-bandwidth) for a roofline "
        "estimate")
    return timing.StepTime(seconds, "roofline" if seconds is not None else "none", note)


__all__ = ["PlanRequest", "make_plan"]
