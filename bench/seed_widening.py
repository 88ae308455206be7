"""How much three seeds widen the 95% interval of Full, LoRA-r8 and BitFit on the default study's setup.

With one seed (the default) an interval holds row noise only: a bootstrap over the evaluated rows, with no
training randomness in it. This script runs seeds 0, 1 and 2 of each method on the default study's setup
(embedded MiniLM, embedded data, the default sizes) through the real runner into a store (resumable: a
trial already in --db is reused, e.g. the seed-0 trials of a `make study` store), then computes both
intervals exactly as the results table does (report.tables.summary_frame):

  1 seed     seed 0 alone: the bootstrap over its rows (rows only)
  3 seeds    all seeds: the rows bootstrap of the seed-averaged figure combined with the spread over seeds

and prints, per method and figure (test accuracy, validation accuracy), both half-widths and their ratio.
Only intervals are read, so a loaded machine changes the trials' timings, never these figures.

    .venv/bin/python bench/seed_widening.py                       # 9 trials, ~1-3 min each on 2 cores
    .venv/bin/python bench/seed_widening.py --db peftbench.db     # reuse a default study's seed-0 trials
    .venv/bin/python bench/seed_widening.py --smoke               # seconds, on a tiny random BERT
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import tempfile
from pathlib import Path

import _common as C

DEFAULT_METHODS = "Full,LoRA-r8,BitFit"
FIGURES = [("accuracy", "test acc"), ("val_accuracy", "val acc")]
# --smoke: two methods x two seeds on a tiny random BERT, tiny sizes, one thread
SMOKE = {"threads": 1, "methods": "BitFit,LoRA-r8", "seeds": 2, "train_size": 16}


def study_specs(args):
    """The default study's trials for these methods and seeds (--smoke: tiny sizes and model)."""
    from peftbench.config.spec import EMBEDDED
    from peftbench.studies.definitions import TRADEOFF_TRAIN, StudyOptions, tradeoff

    opts = StudyOptions(model=args.model or EMBEDDED, methods=C.split_methods(args.methods), seeds=args.seeds)
    if args.train_size is not None:
        opts.train = dataclasses.replace(TRADEOFF_TRAIN, train_size=args.train_size)
    if args.smoke:
        opts.data = C.small_data_spec(20, 40, 20, 10)
        opts.train = dataclasses.replace(opts.train, epochs=1, batch_size=8, latency_runs=5,
                                         throughput_batches=1)
    return tradeoff(opts)


def run(specs, db: Path, threads: int):
    from peftbench.execute.local import LocalExecutor
    from peftbench.store.db import Store
    from peftbench.studies.runner import run_trials

    executor = LocalExecutor(workers=1)
    executor.threads = threads
    summary = run_trials(specs, db, executor)
    with Store(db, create=False) as store:
        records = store.records("tradeoff")
    ids = {s.trial_id for s in specs}
    return summary, records[records["trial_id"].isin(ids)].reset_index(drop=True)


def half_width(row, metric: str) -> float | None:
    lo, hi = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return None
    return (hi - lo) / 2


def widening(records, methods: list[str]) -> list[dict]:
    """Per method and figure: seed 0's interval (rows only) and all seeds' (rows and seeds), both from the
    results table's summary_frame."""
    from peftbench.report.tables import summary_frame

    one = summary_frame(records[records["seed"] == 0]).set_index("method")
    every = summary_frame(records).set_index("method")
    out = []
    for method in methods:
        if method not in one.index or method not in every.index:
            continue
        per_seed = records[records["method"] == method].sort_values("seed")
        for metric, label in FIGURES:
            a, b = one.loc[method], every.loc[method]
            hw1, hwn = half_width(a, metric), half_width(b, metric)
            values = [float(v) for v in per_seed[metric]]
            out.append({"method": method, "figure": label, "metric": metric,
                        "seed0_mean": float(a[f"{metric}_mean"]), "seed0_half_width": hw1,
                        "seed0_interval": a[f"{metric}_interval"],
                        "seeds": int(b["seeds"]), "seeds_mean": float(b[f"{metric}_mean"]),
                        "seeds_half_width": hwn, "seeds_interval": b[f"{metric}_interval"],
                        "per_seed": values,
                        "seed_std": statistics.stdev(values) if len(values) > 1 else None,
                        "ratio": hwn / hw1 if hw1 and hwn is not None else None})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--train-size", type=int, default=None, help="default: the default study's (1000)")
    parser.add_argument("--db", default=None,
                        help="store to run into and reuse trials from (default bench/out/seed_widening.db; "
                             "--smoke: a temporary one)")
    parser.add_argument("--model", default=None,
                        help="base model (default: the embedded one; --smoke: a tiny random BERT)")
    args = C.bench_args(parser, argv, SMOKE, "bert")
    threads = args.threads
    C.warn_if_busy(threads)
    if args.seeds < 2:
        parser.error("--seeds must be at least 2: the point is the widening over seeds")
    specs = study_specs(args)
    methods = list(dict.fromkeys(s.method.name for s in specs))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.db) if args.db else (Path(tmp) / "smoke.db" if args.smoke else
                                            C.OUT_DIR / "seed_widening.db")
        db.parent.mkdir(parents=True, exist_ok=True)
        summary, records = run(specs, db, threads)
    rows = widening(records, methods)
    n = args.seeds
    C.print_table(
        f"95% interval half-width of one seed (rows only) vs {n} seeds (rows and seeds), "
        "default study's setup",
        ["method", "figure", "seed 0 (rows only)", f"{n} seeds (rows+seeds)", "ratio", "per-seed values"],
        [[r["method"], r["figure"], f"{r['seed0_mean']:.3f} ± {C.fmt(r['seed0_half_width'], '.3f')}",
          f"{r['seeds_mean']:.3f} ± {C.fmt(r['seeds_half_width'], '.3f')}", C.fmt(r["ratio"], ".2f") + "x",
          " / ".join(f"{v:.3f}" for v in r["per_seed"])] for r in rows],
        notes=[f"ratio = {n}-seed half-width / seed-0 half-width (stats/intervals.combined_interval, as the "
               f"results table computes it)"])
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    spec = specs[0]
    C.write_json("seed_widening", {
        "methods": methods, "seeds": n, "model": spec.model, "smoke": args.smoke,
        "train_size": spec.train.train_size, "epochs": spec.train.epochs, "batch_size": spec.train.batch_size,
        "validation_size": spec.data.validation_size, "test_size": spec.data.test_size, "threads": threads,
        "db": str(args.db) if args.db else None, "rows": rows,
        "ratio_min": min(ratios, default=None), "ratio_max": max(ratios, default=None),
    }, args.json)
    bad = summary.failed + summary.cancelled
    if bad or len(rows) != len(methods) * len(FIGURES):
        print(f"{bad} trial(s) failed or were cancelled: the figures above are incomplete", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
