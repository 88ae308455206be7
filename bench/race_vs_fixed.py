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


def shifted(specs, first_seed: int):
    """The same trials under seeds first_seed, first_seed+1, ... (a race's round r runs its r-th seed)."""
    return [dataclasses.replace(s, seed=s.seed + first_seed) for s in specs]


def seed_range(specs) -> str:
    seeds = sorted({s.seed for s in specs})
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def agreement(a: dict, b: dict) -> dict:
    """Whether two answers name the same winner and tied set, and the tied sets' overlap (Jaccard)."""
    ta, tb = set(a["tied"]), set(b["tied"])
    return {"same_winner": a["winner"] == b["winner"], "same_tied": ta == tb,
            "jaccard": len(ta & tb) / len(ta | tb) if ta | tb else 1.0}


def agreement_note(scenario: str, what: str, a: dict) -> str:
    return (f"{scenario}: {what}: same winner {'yes' if a['same_winner'] else 'NO'}, same tied set "
            f"{'yes' if a['same_tied'] else 'NO'} (overlap {a['jaccard']:.2f})")


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
    if len(records) < len(specs):
        raise SystemExit(f"{db}: {len(records)} of the fixed study's {len(specs)} trials finished (seeds "
                         f"{seed_range(specs)}); run this script on it with those seeds first")
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
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds run are first-seed .. first-seed+K-1 (default 0): another set of seeds is "
                        "a second, independent fixed study and race of the same configurations")
    parser.add_argument("--max-seeds", type=int, default=None, help="the race's --max-seeds (default: --seeds)")
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--compare-with", default=None, help="a store holding the same fixed study under other "
                        "seeds (--compare-first-seed): how often do two fixed studies agree, and the race with it?")
    parser.add_argument("--compare-first-seed", type=int, default=0, help="that store's first seed (default 0)")
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
    fixed_specs = shifted(tradeoff(study_options(args, args.seeds)), args.first_seed)
    race_specs = shifted(tradeoff(study_options(args, max_seeds)), args.first_seed)
    configs = len({dataclasses.replace(s, seed=0).trial_id for s in fixed_specs})
    other_specs = shifted(tradeoff(study_options(args, args.seeds)), args.compare_first_seed)
    if args.compare_with and {s.trial_id for s in other_specs} & {s.trial_id for s in fixed_specs}:
        raise SystemExit("--compare-with needs seeds that do not overlap this run's (--compare-first-seed)")
    rows, out, notes = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.db) if args.db else (Path(tmp) / "smoke.db" if args.smoke else
                                            C.OUT_DIR / f"race_vs_fixed-{args.preset}"
                                            f"{f'-from-seed{args.first_seed}' if args.first_seed else ''}.db")
        db.parent.mkdir(parents=True, exist_ok=True)
        summary = run_trials(fixed_specs, db, executor(threads))
        for scenario in scenarios:
            fixed = {**fixed_answer(db, fixed_specs, scenario_weights(scenario), args.smoke),
                     "trials": len(fixed_specs),
                     "beyond_first": len(fixed_specs) - configs}
            raced = race(db, race_specs, settings[scenario], threads)
            for line in raced["lines"]:
                print(line)
            same = agreement(fixed, raced)
            out.append({"scenario": scenario, "fixed": fixed, "race": raced, "same_winner": same["same_winner"],
                        "same_tied": same["same_tied"], "tied_overlap": same["jaccard"],
                        "beyond_share": raced["beyond_first"] / fixed["beyond_first"] if fixed["beyond_first"]
                        else None})
            notes.append(agreement_note(scenario, "race vs fixed", same)
                         + f"; race beyond round 1: {raced['beyond_first']} of the fixed study's "
                         f"{fixed['beyond_first']} (target <= 1/3)")
            answers = [(f"fixed, seeds {seed_range(fixed_specs)}", fixed), (f"race (max {max_seeds})", raced)]
            if args.compare_with:  # a second fixed study on other seeds: the yardstick for "same answer"
                other = {**fixed_answer(Path(args.compare_with), other_specs, scenario_weights(scenario),
                                        args.smoke), "trials": len(other_specs),
                         "beyond_first": len(other_specs) - configs}
                out[-1].update(other_fixed=other, fixed_vs_other=agreement(fixed, other),
                               race_vs_other=agreement(raced, other))
                answers.append((f"fixed, seeds {seed_range(other_specs)} (other store)", other))
                notes += [agreement_note(scenario, f"fixed vs fixed (seeds {seed_range(other_specs)})",
                                         out[-1]["fixed_vs_other"]),
                          agreement_note(scenario, f"race vs fixed (seeds {seed_range(other_specs)})",
                                         out[-1]["race_vs_other"])]
            for name, a in answers:
                rows.append([scenario, name, a["winner"], f"{a['p_best']:.2f}", ", ".join(a["tied"]),
                             str(a["trials"]), str(a["beyond_first"]), a.get("stop", "-")])
    C.print_table(f"Race vs a fixed {args.seeds}-seed study ({configs} configurations, preset {args.preset}): "
                  "winner, P(best) and tied set on validation",
                  ["scenario", "answer from", "winner", "P(best)", "tied set", "trials", "beyond round 1",
                   "stop"], rows, notes=notes)
    spec = fixed_specs[0]
    C.write_json("race_vs_fixed", {
        "preset": args.preset, "smoke": args.smoke, "model": spec.model, "configurations": configs,
        "seeds": args.seeds, "first_seed": args.first_seed, "compare_with": args.compare_with,
        "compare_first_seed": args.compare_first_seed if args.compare_with else None, "max_seeds": max_seeds, "confidence": args.confidence,
        "scenarios": out,
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
