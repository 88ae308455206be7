"""Every bench/ script runs: each one's --smoke mode (tiny random model, tiny sizes) in its own process, as a
user would run it, so a library change that breaks a script fails here rather than the next time someone
wants its figures. The figures themselves mean nothing at these sizes; what is checked is that each script
prints its table and writes the JSON it documents, with finite numbers where numbers must be."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
DEFAULT_METHODS = ["Full", "LoRA-r8", "BitFit", "PrefixTuning-len16"]
# Longest first. Each script runs one torch thread in --smoke, so two at a time use two cores; most of each
# run is importing torch/transformers/peft (again in the runner's forkserver), not the tiny work itself.
ENCODER_SCRIPTS = ["seed_vs_peftbench", "tune_cost", "harness_overhead", "plan_accuracy", "race_vs_fixed",
                   "seed_widening", "distance_to_limit"]
DECODER_SCRIPTS = ["decoder_templates", "generate_eval_cost"]


def run_bench(name: str, folder: Path, *extra: str) -> tuple[str, dict]:
    """Run bench/<name>.py --smoke from `folder` (PYTHONPATH inherited); return its stdout and its JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PEFTBENCH_CACHE": str(folder / "cache")}
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--smoke", "--json", str(out), *extra],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["script"] == f"bench/{name}.py" and payload["machine"]["cores"] >= 1
    return proc.stdout, payload


def race_pair(folder: Path) -> tuple[tuple[str, dict], tuple[str, dict]]:
    """race_vs_fixed twice on one tiny BERT (a trial's identity holds its model's path): seeds 0-1 into one
    store, then seeds 2-3 into another, compared with the first."""
    loader = importlib.util.spec_from_file_location("_tiny_models", BENCH / "_tiny_models.py")
    tiny = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(tiny)
    model = tiny.tiny_bert(folder / "model")
    first = run_bench("race_vs_fixed", folder / "seeds0", "--model", model, "--db", str(folder / "seeds0.db"))
    second = run_bench("race_vs_fixed", folder / "seeds2", "--model", model, "--first-seed", "2",
                       "--db", str(folder / "seeds2.db"), "--compare-with", str(folder / "seeds0.db"))
    return first, second


@pytest.fixture(scope="module")
def bench(request, tmp_path_factory):
    """The selected tests' scripts, started two at a time as soon as the module begins; a test waits for
    its own. The decoder scripts share one tiny random Llama (its tokenizer takes seconds to read)."""
    wanted = {item.name.removeprefix("test_") for item in request.session.items
              if getattr(item, "module", None) is request.module}
    root = tmp_path_factory.mktemp("bench")
    pool = ThreadPoolExecutor(max_workers=2)
    runs: dict[str, Future] = {}
    for name in ENCODER_SCRIPTS:
        if name in wanted:
            runs[name] = (pool.submit(race_pair, root / name) if name == "race_vs_fixed" else
                          pool.submit(run_bench, name, root / name))
    if wanted & set(DECODER_SCRIPTS):
        model = request.getfixturevalue("tiny_llama")
        for name in DECODER_SCRIPTS:
            if name in wanted:
                runs[name] = pool.submit(run_bench, name, root / name, "--model", model)
    yield lambda name: runs[name].result()
    pool.shutdown(wait=True, cancel_futures=True)


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def non_negative(x, slack: float = 0.0) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x >= -slack


def test_seed_vs_peftbench(bench):
    stdout, fig = bench("seed_vs_peftbench")
    assert "Seed notebook pipeline vs peftbench" in stdout and "speed-up, whole study" in stdout
    seed_rows = [r for r in fig["rows"] if r["seed_run"] == "seed"]
    assert [r["method"] for r in seed_rows] == ["BitFit", "PrefixTuning-len16"]
    for r in fig["rows"]:
        assert r["peftbench"]["status"] == "ok"
        assert 0.0 <= r["seed"]["accuracy"] <= 1.0 and 0.0 <= r["peftbench"]["accuracy"] <= 1.0
        assert positive(r["seed"]["seconds"]) and positive(r["seed"]["train_seconds"])
        assert positive(r["speedup_trial"]) and positive(r["speedup_train_only"])
    totals = fig["totals"]
    assert positive(totals["speedup_study"]) and positive(totals["speedup_train_only"])
    assert totals["seed_seconds"] > totals["seed_tokenize_seconds"] > 0


def test_tune_cost(bench):
    stdout, fig = bench("tune_cost")
    assert "candidates (tuned study)" in stdout and "tuned / untuned wall time" in stdout
    assert positive(fig["untuned_wall_s"]) and positive(fig["tuned_wall_s"])
    assert fig["ratio"] == pytest.approx(fig["tuned_wall_s"] / fig["untuned_wall_s"])
    cands = fig["candidates"]
    assert len(cands) == 3 and all(c["status"] in ("ok", "pruned") for c in cands)
    assert sum(c["chosen"] == "✓" for c in cands) == 1
    assert fig["tuned_ok"] + fig["tuned_pruned"] == 3
    # the default candidate is the untuned trial plus validation scoring: the same validation accuracy
    default = next(c for c in cands if c["candidate"] == "BitFit")
    assert default["same_as_untuned"] == "yes"


def test_harness_overhead(bench):
    stdout, fig = bench("harness_overhead")
    assert "Harness overhead per trial" in stdout and "harness overhead median" in stdout
    assert "(b) entered -> first step, step by step" in stdout
    assert fig["summary"]["ok"] == len(fig["trials"]) == 2
    for t in fig["trials"]:
        assert t["status"] == "ok"
        # intervals between two processes' wall clocks: a microsecond of rounding either way is no failure
        assert all(non_negative(t[k], slack=1e-3) for k in ("driver_to_spawn", "spawn_to_entered",
                                                            "record_to_stored", "harness"))
        assert positive(t["entered_to_first_step"]) and positive(t["trial_seconds"])
    assert non_negative(fig["stats"]["median (after 1st)"]["harness"])
    assert [b["method"] for b in fig["breakdown_b"]] == ["BitFit", "LoRA-r8"]
    for b in fig["breakdown_b"]:
        assert list(b["seconds"]) == ["provenance", "load model", "build method", "count params", "FLOP count",
                                      "optimizer"]
        assert all(non_negative(s) for s in b["seconds"].values()) and positive(b["total"])
    assert positive(fig["data_cost"]["pickled_mb"])


def test_distance_to_limit(bench):
    stdout, fig = bench("distance_to_limit")
    assert "Training step vs the machine's fp32 matmul peak" in stdout and "% of peak" in stdout
    assert positive(fig["peak"]["gflops_per_s"])
    assert [m["method"] for m in fig["methods"]] == DEFAULT_METHODS
    for m in fig["methods"]:
        assert m["method"] in stdout
        assert positive(m["flops_per_step"]) and positive(m["forward_flops"])
        assert m["forward_flops"] < m["flops_per_step"]  # the backward pass is counted too
        assert all(positive(m["median_seconds"][k]) for k in ("forward", "backward", "optimizer", "step"))
        assert positive(m["achieved_gflops_per_s"]) and positive(m["percent_of_peak"])
        assert positive(m["trainable_params"])
    by = {m["method"]: m for m in fig["methods"]}
    assert by["LoRA-r8"]["trainable_params"] < by["Full"]["trainable_params"]
    assert by["Full"]["target_percent"] == 40.0 and by["BitFit"]["target_percent"] is None


def test_seed_widening(bench):
    stdout, fig = bench("seed_widening")
    assert "rows only" in stdout and "rows+seeds" in stdout
    assert fig["seeds"] == 2 and fig["smoke"] is True
    assert len(fig["rows"]) == 2 * len(fig["methods"])  # test and validation accuracy per method
    for r in fig["rows"]:
        assert len(r["per_seed"]) == 2 and all(0.0 <= v <= 1.0 for v in r["per_seed"])
        assert positive(r["seed0_half_width"]) and positive(r["seeds_half_width"])
        assert r["ratio"] == pytest.approx(r["seeds_half_width"] / r["seed0_half_width"])


def test_race_vs_fixed(bench):
    (stdout, fig), (other_stdout, other) = bench("race_vs_fixed")
    assert "Race vs a fixed 2-seed study (3 configurations" in stdout and "beyond round 1" in stdout
    assert fig["smoke"] is True and fig["seeds"] == fig["max_seeds"] == 2 and fig["configurations"] == 3
    assert [s["scenario"] for s in fig["scenarios"]] == ["balanced", "performance-critical"]
    for s in fig["scenarios"]:
        fixed, race = s["fixed"], s["race"]
        assert fixed["trials"] == 6 and fixed["beyond_first"] == 3
        assert race["round_trials"][0] == 3 and race["trials"] == sum(race["round_trials"]) <= 6
        assert race["beyond_first"] == race["trials"] - 3 and race["rounds"] == len(race["round_trials"])
        assert race["run_now"] == 0  # every trial the race asks for is one of the fixed study's, reused
        assert race["stop"] in ("confident", "tied set stable", "one contender left", "max seeds")
        for answer in (fixed, race):
            assert answer["winner"] in ("BitFit", "LoRA-r8", "Full") and answer["winner"] == answer["tied"][0]
            assert 0.0 <= answer["p_best"] <= 1.0
        assert s["same_winner"] == (fixed["winner"] == race["winner"])
    # the same study under seeds 2-3, read beside the first store's seeds 0-1: a second, independent fixed study
    assert other["first_seed"] == 2 and other["compare_first_seed"] == 0
    assert "fixed, seeds 0-1 (other store)" in other_stdout and "fixed vs fixed (seeds 0-1)" in other_stdout
    for s, first in zip(other["scenarios"], fig["scenarios"]):
        assert {k: s["other_fixed"][k] for k in ("winner", "tied")} == {k: first["fixed"][k] for k in ("winner", "tied")}
        for key, answer in (("fixed_vs_other", s["fixed"]), ("race_vs_other", s["race"])):
            mine, theirs = set(answer["tied"]), set(first["fixed"]["tied"])
            assert s[key]["jaccard"] == pytest.approx(len(mine & theirs) / len(mine | theirs))
            assert s[key]["same_winner"] == (answer["winner"] == first["fixed"]["winner"])


def test_decoder_templates(bench):
    from peftbench.tasks.generate.data import TEMPLATES

    stdout, fig = bench("decoder_templates")
    assert "zero-shot val EM" in stdout
    assert [t["template"] for t in fig["templates"]] == list(TEMPLATES)
    for t in fig["templates"]:
        assert t["template"] in stdout and t["rows"] == 8
        assert 0.0 <= t["validation_exact_match"] <= 1.0 and 0.0 <= t["other_rate"] <= 1.0
        assert t["ci95"][0] <= t["validation_exact_match"] <= t["ci95"][1]
    # the setup it measured on, held to the recorded evidence's: the smoke's 8 rows are another split
    assert fig["setup"]["validation_size"] == 8 and len(fig["setup"]["split_hash"]) == 16
    assert {d.split(":")[0] for d in fig["setup_differences"]} >= {"validation_size", "split_hash", "model"}
    assert "recorded evidence's setup: differs (" in stdout


def test_generate_eval_cost(bench):
    stdout, fig = bench("generate_eval_cost")
    assert "scoring in all" in stdout and positive(fig["max_new_tokens"])
    parts = {p["part"]: p for p in fig["parts"]}
    expected = ["validation: greedy generation", "validation: response NLL", "test: greedy generation",
                "test: response NLL", "OOD: generation", "forgetting: general-text CE",
                "speed: TTFT + decode tok/s"]
    assert all(name in parts and name in stdout for name in expected)
    assert sum(name.startswith("perturbed ") for name in parts) == 4
    assert parts["validation: greedy generation"]["rows"] == 8 and parts["OOD: generation"]["rows"] == 4
    assert all(non_negative(p["seconds"]) for p in fig["parts"])
    assert fig["total_seconds"] == pytest.approx(sum(p["seconds"] for p in fig["parts"]))
    assert positive(fig["total_seconds"])


def test_plan_accuracy(bench):
    stdout, fig = bench("plan_accuracy")
    flat = " ".join(stdout.split())
    assert "Plan vs measured" in flat and "memory |error| median" in flat and "held-out shapes" in flat
    assert [(r["shape"], r["set"], r["method"]) for r in fig["rows"]] == [
        ("encoder", "fit", "Full"), ("encoder", "fit", "LoRA-r8"), ("long", "fit", "Full"),
        ("long", "fit", "LoRA-r8"), ("wide", "held out", "Full"), ("wide", "held out", "LoRA-r8")]
    for r in fig["rows"]:
        assert r["status"] == "ok" and r["params_exact"] is True and r["measured_as"] == "peak_rss_net_mb"
        assert positive(r["memory_pred_mb"]) and positive(r["memory_meas_mb"])
        assert positive(r["time_pred_s"]) and positive(r["time_meas_s"])
        assert isinstance(r["memory_err_pct"], float) and isinstance(r["time_err_pct"], float)
    s = fig["summary"]
    assert s["params_exact"] is True and positive(s["memory_worst_abs_err_pct"])
    assert positive(s["fit_memory_worst_abs_err_pct"]) and positive(s["held_out_memory_worst_abs_err_pct"])
    cost = fig["plan_cost"]  # the plan's own cost, each in a fresh process: wall, CPU and its own peak RSS
    for key in ("study_cold", "study_warm", "config_3b"):
        assert positive(cost[key]["wall_s"]) and 0 < cost[key]["peak_rss_mb"] < 4096, (key, cost)
    assert cost["study_cold"]["methods"] == 2 and positive(cost["study_cold"]["predicted_train_s"])