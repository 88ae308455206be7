"""A race against a fixed-seed study: does `--race` name the same winner and tied set for fewer trials?

On the default study's setup (or `--preset quick` where time forbids) this runs the fixed study, every
method under seeds 0..K-1 (`--seeds K`, default 3), through the real runner into a store, then races the
same configurations for each scenario (`--scenarios`, default balanced and performance-critical) into the
same store, with `--max-seeds` (default: K) and `--confidence` (default 0.9). A race's round r runs the
fixed study's seed r-1 trials, so where the two coincide the race reuses the stored trial (the store is
resumable: run again, nothing reruns); what is counted is what each would have spent alone.

Both answers are read on validation by the same hierarchical bootstrap (analysis/race.py's `assess`:
seeds resampled, then rows; a one-seed configuration gets seed noise). Per scenario it prints the fixed
study's and the race's winner, P(best) and tied set, and the trials each spent: the targets are the same
winner and tied set, and a race spending at most a third of the fixed study's trials beyond the first round.

    .venv/bin/python bench/race_vs_fixed.py --preset quick     # 12 methods x 3 seeds = 36 trials, then races
    .venv/bin/python bench/race_vs_fixed.py                     # the default study's setup (3x make study's trials)
    .venv/bin/python bench/race_vs_fixed.py --smoke             # seconds, on a tiny random BERT
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import _common as C

DEFAULT_SCENARIOS = "balanced,performance-critical"
# --smoke: three methods x two seeds on a tiny random BERT, tiny sizes, one thread
SMOKE = {"threads": 1, "methods": "BitFit,LoRA-r8,Full", "seeds": 2, "train_size": 16}


def study_options(args, seeds: int):
    """The tradeoff study of the preset (--smoke: tiny sizes and model) under `seeds` seeds."""
    from peftbench.studies.settings import study_options_from

    values = {"preset": args.preset, "model": args.model, "train_size": args.train_size,
              "methods": C.split_methods(args.methods) if args.methods else None}
    opts = study_options_from(values)
    if args.smoke:
        opts = dataclasses.replace(opts, data=C.small_data_spec(20, 40, 20, 10),
                                   train=dataclasses.replace(opts.train, epochs=1, batch_size=8, latency_runs=5,
                                                             throughput_batches=1))
    return dataclasses.replace(opts, seeds=seeds)


def executor(threads: int):
    from peftbench.execute.local import LocalExecutor

    ex = LocalExecutor(workers=1)
    ex.threads = threads
    return ex


def answer_of(rec) -> dict:
    """Winner, its P(best) and the tied set of a Recommendation (analysis.race.assess(...).rec)."""
    p = float(rec.ranking.loc[rec.top, "p_best"]) if "p_best" in rec.ranking else float("nan")
    return {"winner": rec.top, "p_best": p, "tied": list(rec.tied)}


def fixed_answer(db: Path, specs, weights, include_collapsed: bool) -> dict:
    from peftbench.analysis.race import assess
    from peftbench.store.db import Store

    with Store(db, create=False) as store:
        records = store.records("tradeoff")
    records = records[records["trial_id"].isin({s.trial_id for s in specs})].reset_index(drop=True)
    return answer_of(assess(records, weights, "tradeoff", include_collapsed).rec)


def race(db: Path, specs, settings, threads: int) -> dict:
    from peftbench.studies.race import run_race

    answer = run_race(specs, db, executor(threads), settings, say=lambda line: print(line, file=sys.stderr))
    final = answer.final
    return {"winner": final.label(final.leader) if final.leader else None, "p_best": final.p_best,
            "tied": [final.label(c) for c in final.tied], "stop": final.stop, "rounds": final.round,
            "round_trials": answer.round_trials, "trials": answer.trials,
            "beyond_first": answer.trials - answer.round_trials[0], "run_now": answer.run_now,
            "lines": answer.lines()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", choices=["default", "quick"])
    parser.add_argument("--methods", default=None, help="default: the seed's 12 methods")
    parser.add_argument("--seeds", type=int, default=3, help="the fixed study's seeds (default 3)")
    parser.add_argument("--max-seeds", type=int, default=None, help="the race's --max-seeds (default: --seeds)")
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--scenarios", default=DEFAULT_SCENARIOS)
    parser.add_argument("--train-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--db", default=None, help="store to run into and reuse trials from (default "
                        "bench/out/race_vs_fixed-<preset>.db; --smoke: a temporary one)")
    parser.add_argument("--model", default=None, help="base model (default: the embedded one; --smoke: a tiny "
                        "random BERT)")
    args = C.bench_args(parser, argv, SMOKE, "bert")
    threads = args.threads
    C.warn_if_busy(threads)
    from peftbench.analysis.scenarios import scenario_weights
    from peftbench.studies.definitions import tradeoff
    from peftbench.studies.race import race_settings
    from peftbench.studies.runner import run_trials

    max_seeds = args.max_seeds or args.seeds
    scenarios = C.split_methods(args.scenarios)
    settings = {s: race_settings({"race": True, "scenario": s, "confidence": args.confidence,
                                  "max_seeds": max_seeds}, studies=["tradeoff"]) for s in scenarios}
    if args.smoke:  # a tiny random model learns nothing in 16 rows: rank its collapsed trials anyway
        settings = {s: dataclasses.replace(v, rule=dataclasses.replace(v.rule, include_collapsed=True))
                    for s, v in settings.items()}
    fixed_specs = tradeoff(study_options(args, args.seeds))
    race_specs = tradeoff(study_options(args, max_seeds))
    configs = len({dataclasses.replace(s, seed=0).trial_id for s in fixed_specs})
    rows, out = [], []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.db) if args.db else (Path(tmp) / "smoke.db" if args.smoke else
                                            C.OUT_DIR / f"race_vs_fixed-{args.preset}.db")
        db.parent.mkdir(parents=True, exist_ok=True)
        summary = run_trials(fixed_specs, db, executor(threads))
        for scenario in scenarios:
            fixed = {**fixed_answer(db, fixed_specs, scenario_weights(scenario), args.smoke),
                     "trials": len(fixed_specs),
                     "beyond_first": len(fixed_specs) - configs}
            raced = race(db, race_specs, settings[scenario], threads)
            for line in raced["lines"]:
                print(line)
            same_winner, same_tied = fixed["winner"] == raced["winner"], set(fixed["tied"]) == set(raced["tied"])
            out.append({"scenario": scenario, "fixed": fixed, "race": raced, "same_winner": same_winner,
                        "same_tied": same_tied,
                        "beyond_share": raced["beyond_first"] / fixed["beyond_first"] if fixed["beyond_first"]
                        else None})
            for name, a in ((f"fixed --seeds {args.seeds}", fixed), (f"race (max {max_seeds})", raced)):
                rows.append([scenario, name, a["winner"], f"{a['p_best']:.2f}", ", ".join(a["tied"]),
                             str(a["trials"]), str(a["beyond_first"]), a.get("stop", "-")])
    C.print_table(f"Race vs a fixed {args.seeds}-seed study ({configs} configurations, preset {args.preset}): "
                  "winner, P(best) and tied set on validation",
                  ["scenario", "answer from", "winner", "P(best)", "tied set", "trials", "beyond round 1",
                   "stop"], rows,
                  notes=[f"{o['scenario']}: same winner {'yes' if o['same_winner'] else 'NO'}, same tied set "
                         f"{'yes' if o['same_tied'] else 'NO'}; race beyond round 1: {o['race']['beyond_first']} "
                         f"of the fixed study's {o['fixed']['beyond_first']} (target <= 1/3)" for o in out])
    spec = fixed_specs[0]
    C.write_json("race_vs_fixed", {
        "preset": args.preset, "smoke": args.smoke, "model": spec.model, "configurations": configs,
        "seeds": args.seeds, "max_seeds": max_seeds, "confidence": args.confidence, "scenarios": out,
        "train_size": spec.train.train_size, "epochs": spec.train.epochs, "batch_size": spec.train.batch_size,
        "validation_size": spec.data.validation_size, "threads": threads,
        "fixed_run": dataclasses.asdict(summary)}, args.json)
    if summary.failed + summary.cancelled:
        print(f"{summary.failed + summary.cancelled} trial(s) failed or were cancelled: the figures above are "
              "incomplete", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
