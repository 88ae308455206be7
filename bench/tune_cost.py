"""What --tune costs: a tuned study (3 learning rates per method, Optuna successive halving) against the same
study untuned, on the embedded model and data. Target: tuned <= 2x untuned wall time.

Both run through the real runner (run_trials, LocalExecutor: one fresh process per trial) into their own
temporary stores, after the forkserver has started (its one-time imports are in neither figure). The tuned
study's default candidates are the untuned trials plus two validation scores, so the script also checks that
each default candidate's validation accuracy equals its untuned trial's.

    .venv/bin/python bench/tune_cost.py                  # Full, LoRA-r8, BitFit; quick preset sizes
    .venv/bin/python bench/tune_cost.py --methods BitFit --train-size 64   # short run
    .venv/bin/python bench/tune_cost.py --smoke          # seconds, on a tiny random BERT: checks it runs
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path

import _common as C

DEFAULT_METHODS = "Full,LoRA-r8,BitFit"
TARGET_RATIO = 2.0
# --smoke: one method's 3 candidates over 4 steps (the first rung at step 1), tiny held-out sets, one thread
SMOKE = {"threads": 1, "methods": "BitFit", "train_size": 32, "epochs": 1}


def timed_study(specs, db: Path, tune: bool, threads: int):
    from peftbench.execute.local import LocalExecutor
    from peftbench.store.db import Store
    from peftbench.studies.runner import run_trials

    executor = LocalExecutor(workers=1)
    executor.threads = threads
    budget = None
    if tune:
        from peftbench.studies.tuning import prepare

        specs, executor, budget = prepare(specs, db, executor, None)
    t0 = time.perf_counter()
    summary = run_trials(specs, db, executor)
    wall = time.perf_counter() - t0
    with Store(db, create=False) as store:
        records = store.records(include_failed=True)
    return wall, summary, records, budget


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--train-size", type=int, default=None, help="default: the quick preset's (256)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the quick preset's (2)")
    parser.add_argument("--model", default=None,
                        help="base model (default: the embedded one; --smoke: a tiny random BERT)")
    args = C.bench_args(parser, argv, SMOKE)
    threads = args.threads
    C.warn_if_busy(threads)

    from peftbench.config.spec import EMBEDDED
    from peftbench.execute.isolation import context
    from peftbench.studies.definitions import QUICK_DATA, QUICK_TRAIN, StudyOptions, tradeoff
    from peftbench.studies.tuning import candidates_frame

    data = QUICK_DATA
    if args.smoke:
        from _tiny_models import smoke_model

        args.model = smoke_model(args.model, "bert")
        data = C.small_data_spec(20, 20, 20, 10)
    train = dataclasses.replace(QUICK_TRAIN, train_size=args.train_size or QUICK_TRAIN.train_size,
                                epochs=args.epochs or QUICK_TRAIN.epochs)
    if args.smoke:
        train = dataclasses.replace(train, latency_runs=5, throughput_batches=1)
    specs = tradeoff(StudyOptions(model=args.model or EMBEDDED, data=data, train=train,
                                  methods=C.split_methods(args.methods)))
    context()  # start the forkserver (torch, transformers, peft imports) before either clock starts
    with tempfile.TemporaryDirectory() as tmp:
        untuned_s, untuned_sum, untuned, _ = timed_study(specs, Path(tmp) / "untuned.db", False, threads)
        tuned_s, tuned_sum, tuned, budget = timed_study(specs, Path(tmp) / "tuned.db", True, threads)
    ratio = tuned_s / untuned_s
    print(budget)
    cands = candidates_frame(tuned)
    base = untuned.set_index("method")
    rows = []
    for _, r in cands.iterrows():
        scores = r.get("tune_rung_scores")
        same = ""
        if r["method"] == r["tune_group"] and r["method"] in base.index:
            same = "yes" if base.loc[r["method"], "val_accuracy"] == r["val_accuracy"] else "NO"
        steps = r.get("train_steps")
        rungs = ", ".join(f"{k}: {v:.3f}" for k, v in scores.items()) if isinstance(scores, dict) else "-"
        steps = int(steps) if steps is not None and not math.isnan(steps) else "-"
        rows.append([r["method"], r["status"], steps, rungs,
                     C.fmt(r.get("val_accuracy"), ".3f"), C.fmt(r.get("trial_seconds"), ".1f"),
                     "✓" if r["chosen"] else "", same])
    C.print_table("candidates (tuned study)", ["candidate", "status", "steps", "rung val acc", "val acc",
                                               "trial s", "chosen", "= untuned val"], rows)
    C.print_table("cost", ["study", "trials", "ok", "pruned", "wall s"], [
        ["untuned", len(specs), untuned_sum.ok, 0, f"{untuned_s:.1f}"],
        ["tuned (3 learning rates)", len(cands), tuned_sum.ok, tuned_sum.pruned, f"{tuned_s:.1f}"],
    ], notes=[f"tuned / untuned wall time: {ratio:.2f}x (target <= {TARGET_RATIO:.0f}x)"])
    C.write_json("tune_cost", {
        "methods": C.split_methods(args.methods), "model": args.model or EMBEDDED, "smoke": args.smoke, "train_size": train.train_size, "epochs": train.epochs,
        "threads": threads, "budget": budget, "untuned_wall_s": untuned_s, "tuned_wall_s": tuned_s,
        "ratio": ratio, "target_ratio": TARGET_RATIO, "tuned_pruned": tuned_sum.pruned,
        "tuned_ok": tuned_sum.ok,
        "candidates": [dict(zip(["candidate", "status", "steps", "rungs", "val_acc", "trial_s", "chosen",
                                 "same_as_untuned"], r)) for r in rows],
    }, args.json)
    failed = untuned_sum.failed + tuned_sum.failed + untuned_sum.cancelled + tuned_sum.cancelled
    if failed:
        print(f"{failed} trial(s) failed or were cancelled: the figures above are incomplete", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
