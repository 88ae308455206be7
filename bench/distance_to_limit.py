"""How far peftbench's training step is from this machine's fp32 matmul peak, per method.

Peak: the best GFLOP/s of large square fp32 GEMMs (2·n³ FLOPs each), best of several runs, with as many
torch threads as cores. Per method: the FLOPs FlopCounterMode counts for one training step on peftbench's
representative batch (peftbench.measure.flops.train_step_flops on peftbench.trial.run.representative_batch)
divided by the median wall time of that same step as peftbench's train loop runs it (forward, backward,
gradient clipping, fused AdamW step, scheduler, zero_grad), after warm-up. Optimizer arithmetic is not in
the FLOP count, so a step heavy on optimizer work scores lower: that is time spent off the matmul path.

    .venv/bin/python bench/distance_to_limit.py                          # defaults: a few minutes on 2 cores
    .venv/bin/python bench/distance_to_limit.py --methods Full,LoRA-r8 --steps 5 --peak-sizes 1024  # short run
    .venv/bin/python bench/distance_to_limit.py --smoke        # seconds, on a tiny random BERT: checks it runs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import _common as C

DEFAULT_METHODS = "Full,LoRA-r8,BitFit,PrefixTuning-len16"
# --smoke: every default method, a few steps of a tiny batch, a small GEMM for the peak; one thread, since
# on a shared machine two threads on two busy cores make a tiny model's step 100x slower
SMOKE = {"threads": 1, "train_size": 64, "batch_size": 8, "steps": 3, "warmup": 1, "peak_sizes": "256", "peak_repeats": 2}
TARGETS = {"full": 40.0, "lora": 30.0, "lora_all": 30.0}  # % of fp32 peak, by method family


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(sizes: list[int], repeats: int, device) -> dict[str, Any]:
    """Best fp32 GEMM rate over sizes × repeats (one untimed warm-up per size)."""
    import torch

    per_size = {}
    for n in sizes:
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        torch.mm(a, b)
        _sync(device)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            _sync(device)
            best = min(best, time.perf_counter() - t0)
        per_size[n] = 2 * n**3 / best / 1e9
        del a, b
    return {"gflops_per_s": max(per_size.values()), "per_size_gflops_per_s": per_size}


def step_rate(method: str, data, args, device) -> dict[str, Any]:
    """FLOPs of one training step (counted) and its median time (measured), as peftbench's trial sets it up."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    from peftbench.config.spec import TrainSpec
    from peftbench.measure import flops as fl
    from peftbench.measure.params import base_parameter_count
    from peftbench.methods import BuildContext, build_model, parse_method
    from peftbench.models.loading import load_classifier
    from peftbench.trial.run import quiet_library_warnings, seed_everything
    from peftbench.trial.measure_training import representative_batch
    from peftbench.trial.train import optimizer_groups, total_steps

    spec = parse_method(method)
    train = TrainSpec(train_size=args.train_size, batch_size=args.batch_size)
    quiet_library_warnings()
    seed_everything(0)
    train_set = data.train_pool.take(args.train_size)
    steps_total = total_steps(len(train_set), train)
    base = load_classifier(args.model, data.num_labels)
    heads = base_parameter_count(base)[1]
    model = build_model(base, spec, BuildContext(total_steps=steps_total, num_labels=data.num_labels))
    model.to(device)
    batch = representative_batch(train_set, args.batch_size, data.pad_token_id)
    if args.pad_to:  # what a padding="max_length" pipeline (the seed's) feeds the model
        width = max(args.pad_to, batch["input_ids"].shape[1])
        pad = width - batch["input_ids"].shape[1]
        batch["input_ids"] = torch.nn.functional.pad(batch["input_ids"], (0, pad), value=data.pad_token_id)
        batch["attention_mask"] = torch.nn.functional.pad(batch["attention_mask"], (0, pad), value=0)
    batch = {k: v.to(device) for k, v in batch.items()}
    model.train()
    step_flops, fwd_flops = fl.train_step_flops(model, batch)
    compile_seconds = None
    if args.compile:  # headroom probe: inductor's fused kernels on the same step (peftbench does not compile)
        model = torch.compile(model, dynamic=False)

    # peftbench.trial.train.train's step, on the same batch every time (the head at its own rate, as there).
    opt = torch.optim.AdamW(optimizer_groups(model, train.weight_decay, spec.learning_rate,
                                             spec.head_learning_rate, tuple(heads)),
                            lr=spec.learning_rate, fused=True)
    sched = get_linear_schedule_with_warmup(opt, int(train.warmup_ratio * steps_total), max(steps_total, 1))
    adalora = getattr(getattr(model, "base_model", None), "update_and_allocate", None)
    trainable = [p for p in model.parameters() if p.requires_grad]
    phases: dict[str, list[float]] = {"forward": [], "backward": [], "optimizer": [], "step": []}
    for i in range(args.warmup + args.steps):
        _sync(device)
        t0 = time.perf_counter()
        loss = model(**batch).loss
        _sync(device)
        t1 = time.perf_counter()
        loss.backward()
        _sync(device)
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(trainable, train.max_grad_norm)
        opt.step()
        sched.step()
        if adalora is not None:
            adalora(i + 1)
        opt.zero_grad(set_to_none=True)
        _sync(device)
        t3 = time.perf_counter()
        if i == 0 and args.compile:
            compile_seconds = t3 - t0  # the first step compiles forward and backward
        if i >= args.warmup:
            for k, v in (("forward", t1 - t0), ("backward", t2 - t1), ("optimizer", t3 - t2), ("step", t3 - t0)):
                phases[k].append(v)
    med = {k: statistics.median(v) for k, v in phases.items()}
    trainable_params = sum(p.numel() for p in trainable)
    del model, base, opt, sched
    return {"method": method, "family": spec.family, "flops_per_step": step_flops, "forward_flops": fwd_flops,
            "batch_shape": list(batch["input_ids"].shape), "batch_tokens": int(batch["attention_mask"].sum()),
            "trainable_params": trainable_params, "median_seconds": med,
            "min_step_seconds": min(phases["step"]), "max_step_seconds": max(phases["step"]),
            "achieved_gflops_per_s": step_flops / med["step"] / 1e9, "compiled": bool(args.compile),
            "compile_seconds": compile_seconds}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated presets/specs (default {DEFAULT_METHODS})")
    p.add_argument("--train-size", type=int, default=1000,
                   help="training rows the representative batch is drawn from (default 1000, the tradeoff study's)")
    p.add_argument("--batch-size", type=int, default=16, help="batch size (default 16, the tradeoff study's)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per method (default 30; fewer are noisy on a shared VM)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--peak-sizes", default="2048,3072,4096", help="GEMM sizes for the peak (default 2048,3072,4096)")
    p.add_argument("--peak-repeats", type=int, default=3, help="timed GEMMs per size; the best counts (default 3)")
    p.add_argument("--pad-to", type=int, default=None,
                   help="pad the batch to this length, as padding='max_length' does (e.g. 128, the seed's)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model first (compile time printed apart): how much of the gap to the "
                        "peak fused kernels would close; peftbench itself trains eagerly")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--model", default=None, help="base model (default: the embedded one; --smoke: a tiny random BERT)")
    args = C.bench_args(p, argv, SMOKE)

    import torch

    from peftbench.config.spec import EMBEDDED
    from peftbench.data.prepared import prepare_data
    from peftbench.studies.definitions import QUICK_DATA
    from peftbench.trial.run import resolve_device

    if args.smoke:
        from _tiny_models import smoke_model

        args.model = smoke_model(args.model, "bert")
    args.model = args.model or EMBEDDED

    torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision("highest")  # fp32 means fp32: no TF32 on GPUs
    device = resolve_device(args.device)
    C.warn_if_busy(args.threads)
    sizes = [int(s) for s in C.split_methods(args.peak_sizes)]
    print(f"device {device}, {args.threads} torch thread(s); measuring the fp32 GEMM peak at n = "
          f"{', '.join(map(str, sizes))} ...", flush=True)
    peak = matmul_peak(sizes, args.peak_repeats, device)
    print(f"peak {peak['gflops_per_s']:.1f} GFLOP/s (" + ", ".join(
        f"n={n}: {g:.1f}" for n, g in peak["per_size_gflops_per_s"].items()) + ")", flush=True)

    # only the training pool is read here; --smoke keeps the held-out sets it prepares small too
    held_out = C.small_data_spec(20, 20, 20, 10) if args.smoke else QUICK_DATA
    data = prepare_data(held_out, args.model, args.train_size)
    results = []
    for m in C.split_methods(args.methods):
        print(f"timing {m} ...", flush=True)
        results.append(step_rate(m, data, args, device))

    rows = []
    for r in results:
        pct = 100 * r["achieved_gflops_per_s"] / peak["gflops_per_s"]
        r["percent_of_peak"] = pct
        target = TARGETS.get(r["family"])
        r["target_percent"] = target
        med = r["median_seconds"]
        rows.append([r["method"], "x".join(map(str, r["batch_shape"])), f"{r['flops_per_step'] / 1e9:.2f}",
                     f"{med['step'] * 1e3:.1f}", f"{med['forward'] * 1e3:.1f}", f"{med['backward'] * 1e3:.1f}",
                     f"{med['optimizer'] * 1e3:.1f}", f"{r['achieved_gflops_per_s']:.1f}", f"{pct:.1f}%",
                     f">= {target:.0f}%" if target else "-",
                     ("yes" if pct >= target else "NO") if target else "-"])
    notes = [(f"peak: best fp32 GEMM {peak['gflops_per_s']:.1f} GFLOP/s on {device} with {args.threads} thread(s). "
             f"GFLOP/step: FlopCounterMode, forward + backward (frozen weights get no weight gradient), on "
             f"peftbench's representative batch (the batch-size rows around the median length"
             f"{', padded to ' + str(args.pad_to) if args.pad_to else ''})."),
             (f"ms/step: median of {args.steps} steps after {args.warmup} warm-up steps, same batch; step = forward + "
             f"backward + clip + fused AdamW + scheduler + zero_grad (the 'opt ms' column; its arithmetic is not "
             f"counted as FLOPs).")]
    if args.compile:
        notes.append("compiled with torch.compile (inductor), compile time: " + ", ".join(
            f"{r['method']} {r['compile_seconds']:.1f} s" for r in results)
            + ". peftbench trains eagerly; these rows show what fused kernels would add.")
    C.print_table("Training step vs the machine's fp32 matmul peak",
                  ["method", "batch", "GFLOP/step", "ms/step", "fwd ms", "bwd ms", "opt ms", "GFLOP/s",
                   "% of peak", "target", "meets"], rows, notes)
    C.write_json("distance_to_limit", {
        "settings": {"methods": [r["method"] for r in results], "model": args.model, "smoke": args.smoke,
                     "train_size": args.train_size,
                     "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
                     "pad_to": args.pad_to, "threads": args.threads, "device": str(device),
                     "compile": bool(args.compile)},
        "peak": peak, "methods": results}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
