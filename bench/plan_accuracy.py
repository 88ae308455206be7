"""How right `peftbench plan` is: its predicted parameters, net peak training memory and training time against
what real trials measure, per method family of the seed set, on several shapes; and what planning costs.

Shapes (each trial runs through peftbench's own runner, a fresh process per trial, as a study runs it, and
the plan is made beforehand for the very same TrialSpecs, calibration included, its cache in a temporary
folder so it is measured here):
  encoder   the embedded encoder on its own data, max length 128             } the set the CPU memory
  long      the same encoder on texts ~8x longer, max length 256              } constants were fitted on
  wide      a wider BERT built from a config (768 wide, 3 layers), random weights   } held out: the
  decoder   the embedded decoder (SmolLM2-135M) with a classifier head             } out-of-sample
  generate  the embedded decoder writing the label's name (--task generate)        } test of the model
  cuda      the embedded decoder, generate, LoRA-r8 and Full on a CUDA GPU (peak allocated; only with CUDA)
Memory: predicted peak vs the record's `peak_rss_net_mb` (CUDA: `peak_cuda_allocated_mb`). Time: predicted
vs `train_seconds`. Errors are (predicted - measured) / measured. Memory does not depend on what else runs;
times do: each trial's load average and the cores other work kept busy are printed beside it.
Planning's own cost: `peftbench plan` for the whole default study in a fresh process (empty calibration cache,
then the cache it left), and a 3B Llama planned from its config alone (that process's own peak RSS).

    .venv/bin/python bench/plan_accuracy.py --threads 1               # every shape, ~15 min on 2 cores
    .venv/bin/python bench/plan_accuracy.py --shapes encoder --methods Full,LoRA-r8   # a short run
    .venv/bin/python bench/plan_accuracy.py --smoke        # seconds, on tiny random models: checks it runs
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C

SEED_FAMILIES = "Full,LoRA-r8,LoRA-AllLayers,AdaLoRA,PrefixTuning-len16,PromptTuning-len16,BitFit"
# BitFit has no bias to train on SmolLM2 (a trial stops with one line); prefix tuning starts from zero there
DECODER_FAMILIES = "Full,LoRA-r8,LoRA-AllLayers,AdaLoRA,PrefixTuning-len16:init=zero,PromptTuning-len16"
FOUR_FAMILIES = "Full,LoRA-r8,PrefixTuning-len16,BitFit"
SHAPE_METHODS = {"long": FOUR_FAMILIES, "wide": FOUR_FAMILIES, "cuda": "Full,LoRA-r8"}
FIT_SHAPES = ("encoder", "long")  # plan/memory.py's CPU constants were fitted on these
TARGETS = {"memory_median": 10.0, "memory_worst": 25.0, "time_median": 15.0, "time_worst": 35.0}
SMOKE = {"threads": 1, "methods": "Full,LoRA-r8", "shapes": "encoder,long,wide", "train_size": 32,
         "batch_size": 8, "wide_methods": "Full,LoRA-r8", "long_methods": "Full,LoRA-r8"}


def long_texts_csv(folder: Path, rows: int, join: int) -> str:
    """The embedded data's snippets, `join` at a time, as a CSV: the same labels on texts ~join x longer."""
    from peftbench.data.sources import embedded_dataset

    data = embedded_dataset()
    path = folder / "long.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for i in range(rows):
            label = data.labels[i * join]
            same = [j for j in range(i * join, min(len(data.labels), i * join + 4 * join))
                    if data.labels[j] == label][:join]
            w.writerow([" ".join(data.texts[j] for j in same), data.label_names[label]])
    return str(path)


def wide_model(folder: Path, smoke: bool) -> str:
    """A BERT twice as wide as the embedded one (768, 12 heads, FFN 3072; 3 layers), random weights, with the
    embedded tokenizer: a shape the memory constants never saw."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    from peftbench.models.loading import embedded_model_path

    out = folder / "wide-bert"
    out.mkdir(parents=True, exist_ok=True)
    width, heads, layers = (64, 4, 2) if smoke else (768, 12, 3)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=width, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=4 * width, max_position_embeddings=512)
    BertModel(config).save_pretrained(out)
    src = Path(embedded_model_path())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (src / name).exists():
            shutil.copy(src / name, out / name)
    return str(out)


def shape_specs(name: str, args, work: Path):
    """(model, DataSpec, TrainSpec) of one shape; held-out sets small (they are not what is measured)."""
    from peftbench.config.spec import DataSpec, TrainSpec

    decoder = name in ("decoder", "generate", "cuda")
    held = args.decoder_held_out if decoder else args.held_out
    small = dict(validation_size=held, test_size=held, ood_size=10, perturbation_size=5)
    size, batch = (args.decoder_train_size, args.decoder_batch_size) if decoder else (args.train_size,
                                                                                       args.batch_size)
    train = TrainSpec(train_size=size, epochs=1, batch_size=batch, latency_runs=5, throughput_batches=1,
                      device="cuda" if name == "cuda" else "cpu")
    if name == "encoder":
        return args.model, DataSpec(**small), train
    if name == "long":
        rows = max(args.train_size + 3 * args.held_out + 50, 200)
        return args.model, DataSpec(source=long_texts_csv(work, rows, 8), ood_source=None, max_length=256,
                                    **small), train
    if name == "wide":
        return wide_model(work, args.smoke), DataSpec(**small), train
    if name == "decoder":
        return args.decoder_model, DataSpec(**small), train
    if name in ("generate", "cuda"):
        return args.decoder_model, DataSpec(task="generate", **small), train
    raise SystemExit(f"unknown shape {name!r} (encoder, long, wide, decoder, generate, cuda)")


def methods_of(shape: str, args) -> list[str]:
    if shape in ("decoder", "generate"):
        return C.split_methods(args.decoder_methods)
    given = {"long": args.long_methods, "wide": args.wide_methods}.get(shape)
    return C.split_methods(given or SHAPE_METHODS.get(shape) or args.methods)


def run_shape(name: str, methods: list[str], args, work: Path) -> list[dict[str, Any]]:
    from peftbench.config.spec import TrialSpec
    from peftbench.execute.local import LocalExecutor
    from peftbench.methods import parse_method
    from peftbench.plan.assemble import PlanRequest, make_plan
    from peftbench.store.db import Store
    from peftbench.studies.runner import prepare_study_data, run_trials

    model, data, train = shape_specs(name, args, work)
    specs = [TrialSpec(study=f"bench-plan-{name}", method=parse_method(m), model=model, data=data,
                       train=train) for m in methods]
    prepared = prepare_study_data(data, model, train.train_size)  # the trials read these very batches
    t0 = time.perf_counter()
    plan = make_plan(PlanRequest(model, data, train, [s.method for s in specs], device=train.device,
                                 calibration_budget_s=None), data=prepared, keep_going=True)
    plan_s = time.perf_counter() - t0
    executor = LocalExecutor(workers=1)
    executor.threads = args.threads
    db = work / f"{name}.db"
    run_trials(specs, db, executor, side_by_side=False, prepared={(model, data): prepared})
    with Store(db, create=False) as store:
        records = {r["method"]: {**json.loads(r["record_json"] or "{}"), "status": r["status"],
                                 "error": r["error"]} for r in store.rows()}
    return [compare(name, pred, records.get(pred["method"], {}), plan_s, train.device)
            for pred in plan["methods"]]


def _err(pred, meas) -> float | None:
    if pred is None or not meas:
        return None
    return 100.0 * (pred - meas) / meas


def compare(shape: str, pred: dict, rec: dict, plan_s: float, device: str = "cpu") -> dict[str, Any]:
    """One trial: the plan's figures beside the record's (CUDA: peak allocated; CPU: net peak RSS)."""
    measured = "peak_cuda_allocated_mb" if device == "cuda" else "peak_rss_net_mb"
    out = {"shape": shape, "set": "fit" if shape in FIT_SHAPES else "held out", "method": pred["method"],
           "status": rec.get("status", "missing"), "error": rec.get("error") or pred.get("error"),
           "measured_as": measured, "plan_seconds": plan_s, "load_avg": rec.get("load_avg_start"),
           "other_cores_busy": rec.get("other_cores_busy"), "timing_contended": rec.get("timing_contended")}
    if "error" in pred:  # no plan (a method that cannot apply): nothing to compare
        return {**out, "params_exact": None, "memory_pred_mb": None, "memory_meas_mb": rec.get(measured),
                "memory_err_pct": None, "time_pred_s": None, "time_meas_s": rec.get("train_seconds"),
                "time_err_pct": None, "time_how": None, "split_mb": None}
    ok = rec.get("status") == "ok"
    params_exact = ok and all(pred["params"][k] == rec.get(k) for k in ("trainable_params", "head_params",
                                                                        "total_params"))
    return {**out, "params_exact": params_exact if ok else None,
            "memory_pred_mb": pred["memory"]["peak_mb"], "memory_meas_mb": rec.get(measured),
            "memory_err_pct": _err(pred["memory"]["peak_mb"], rec.get(measured)),
            "split_mb": {k: pred["memory"][k] for k in ("weights_mb", "gradients_mb", "optimizer_mb",
                                                        "activations_mb")},
            "time_pred_s": pred["time"]["trial_s"], "time_meas_s": rec.get("train_seconds"),
            "time_err_pct": _err(pred["time"]["trial_s"], rec.get("train_seconds")),
            "time_how": pred["time"]["how"]}


def summary(rows: list[dict]) -> dict[str, Any]:
    """Median and worst |error| over every compared trial, and apart for the fit set and the held-out
    shapes."""
    def stats(subset: list[dict], key: str) -> tuple[float | None, float | None]:
        errs = [abs(r[key]) for r in subset if r[key] is not None]
        return (C.median(errs), max(errs) if errs else None)

    exact = [r["params_exact"] for r in rows if r["params_exact"] is not None]
    out: dict[str, Any] = {"targets_pct": TARGETS, "params_exact": all(exact)}
    for label, subset in (("", rows), ("fit_", [r for r in rows if r["set"] == "fit"]),
                          ("held_out_", [r for r in rows if r["set"] == "held out"])):
        for what in ("memory", "time"):
            median, worst = stats(subset, f"{what}_err_pct")
            out[f"{label}{what}_median_abs_err_pct"], out[f"{label}{what}_worst_abs_err_pct"] = median, worst
    return out


HIGH_WATER = """
import runpy, sys
def _report():  # the process's own peak (VmHWM): ru_maxrss would count the RSS it was forked with
    hwm = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
    print(f"HIGH_WATER_MIB {hwm:.1f}", file=sys.stderr)
sys.argv = sys.argv[1:]
try:
    if sys.argv[0] == "-m":
        sys.argv = sys.argv[1:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = ["-c", *sys.argv[1:]]
        exec(compile(sys.argv.pop(1), "<plan>", "exec"), {"__name__": "__main__"})
finally:
    _report()
"""


def _run_child(cmd: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float, float, float]:
    """Run `python -m MODULE ...` or `python -c CODE ...`: its wall seconds, CPU seconds (its own rusage,
    reaped here with wait4) and peak RSS in MiB (its own VmHWM, printed as it exits)."""
    cmd = [sys.executable, "-c", HIGH_WATER, *cmd[1:]]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())
    marks = [line for line in done.stderr.splitlines() if line.startswith("HIGH_WATER_MIB ")]
    peak = float(marks[-1].split()[1]) if marks else float("nan")
    return done, wall, usage.ru_utime + usage.ru_stime, peak


PLAN_3B = """
import sys
from transformers import LlamaConfig
from peftbench.config.spec import DataSpec, TrainSpec
from peftbench.methods import parse_method
from peftbench.plan.assemble import PlanRequest, make_plan
folder, hidden, layers, inter, heads, kv, vocab = sys.argv[1], *map(int, sys.argv[2:8])
LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, intermediate_size=inter, num_attention_heads=heads,
            num_key_value_heads=kv, vocab_size=vocab, tie_word_embeddings=True).save_pretrained(folder)
train = TrainSpec(train_size=256, epochs=1, batch_size=8, device="cuda")
methods = [parse_method(m) for m in ("Full", "LoRA-r8")]
plan = make_plan(PlanRequest(folder, DataSpec(max_length=512), train, methods, device="cuda",
                 gpu_memory_mb=80 * 1024, device_tflops=300.0, calibrate=False))
print("PLAN", plan["methods"][0]["params"]["total_params"],
      *(round(r["memory"]["peak_mb"]) for r in plan["methods"]))
"""


def plan_cost(args, work: Path) -> dict[str, Any]:
    """What planning costs: the whole default study (cold calibration cache, then warm), each in a fresh
    process; a 3B Llama planned from its config alone (its own peak RSS)."""
    env = {**os.environ, "PEFTBENCH_CACHE": str(work / "plan-cost-cache"),
           "OMP_NUM_THREADS": str(args.threads)}
    study = [sys.executable, "-m", "peftbench.cli", "plan", "--format", "json"]
    if args.smoke:
        study += ["--model", args.model, "--methods", "Full,LoRA-r8", "--train-size", "64", "--epochs", "1"]
    out: dict[str, Any] = {"threads": args.threads}
    for label in ("cold", "warm"):
        proc, wall, cpu, rss = _run_child(study, env)
        if proc.returncode != 0:
            out[f"study_{label}_error"] = proc.stderr.strip().splitlines()[-1:]
            continue
        plan = json.loads(proc.stdout)
        out[f"study_{label}"] = {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss,
                                 "methods": len(plan["methods"]),
                                 "time_how": sorted({r["time"]["how"] for r in plan["methods"]}),
                                 "predicted_train_s": plan["total_train_s"]}
    # hidden, layers, intermediate, heads, kv heads, vocabulary (Llama-3.2-3B's shape; --smoke: a tiny one)
    shape = ("64", "2", "128", "4", "2", "1000") if args.smoke else ("3072", "28", "8192", "24", "8",
                                                                      "128256")
    proc, wall, cpu, rss = _run_child([sys.executable, "-c", PLAN_3B, str(work / "llama-3b"), *shape], env)
    if proc.returncode == 0:
        fields = proc.stdout.split("PLAN", 1)[1].split()
        out["config_3b"] = {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss, "total_params": int(fields[0]),
                            "full_peak_mb": float(fields[1]), "lora_peak_mb": float(fields[2])}
    else:
        out["config_3b_error"] = proc.stderr.strip().splitlines()[-1:]
    return out


def fresh_calibration_cache(folder: Path) -> None:
    """$PEFTBENCH_CACHE in a temporary folder, so the plan calibrates here rather than reading an old cache;
    the embedded decoder already converted in the usual cache is linked in, not converted again."""
    from peftbench.models.embedded_decoder import converted_path

    folder.mkdir(parents=True, exist_ok=True)
    converted = converted_path()
    if converted is not None:
        (folder / Path(converted).name).symlink_to(converted, target_is_directory=True)
    os.environ["PEFTBENCH_CACHE"] = str(folder)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=SEED_FAMILIES,
                   help=f"presets for the encoder shape ({SEED_FAMILIES})")
    p.add_argument("--long-methods", default=None, help=f"(default {SHAPE_METHODS['long']})")
    p.add_argument("--wide-methods", default=None, help=f"(default {SHAPE_METHODS['wide']})")
    p.add_argument("--decoder-methods", default=DECODER_FAMILIES)
    p.add_argument("--shapes", default="encoder,long,wide,decoder,generate,cuda",
                   help="encoder, long, wide, decoder, generate, cuda (comma-separated; cuda only runs "
                        "with CUDA)")
    p.add_argument("--train-size", type=int, default=160, help="training examples per encoder trial (160)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--decoder-train-size", type=int, default=48, help="per decoder trial (48)")
    p.add_argument("--decoder-batch-size", type=int, default=8)
    p.add_argument("--held-out", type=int, default=40, help="validation and test rows (not what is measured)")
    p.add_argument("--decoder-held-out", type=int, default=12)
    p.add_argument("--model", default=None, help="encoder (default: the embedded one; --smoke: a tiny BERT)")
    p.add_argument("--decoder-model", default="smollm2")
    p.add_argument("--no-plan-cost", action="store_true",
                   help="skip timing the plan of the default study and of a 3B config")
    args = C.bench_args(p, argv, SMOKE, "bert")
    args.model = args.model or "embedded"
    import torch

    torch.set_num_threads(args.threads)
    C.warn_if_busy(args.threads)
    rows: list[dict[str, Any]] = []
    cost: dict[str, Any] = {}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as work:
        fresh_calibration_cache(Path(work) / "cache")
        for shape in C.split_methods(args.shapes):
            if shape == "cuda" and not torch.cuda.is_available():
                print("shape cuda: skipped (no CUDA GPU here); its prediction path is tested on CPU "
                      "(tests/test_plan.py::test_cuda_prediction_path_on_cpu)", flush=True)
                continue
            methods = methods_of(shape, args)
            print(f"shape {shape}: planning, then {len(methods)} trials ...", flush=True)
            rows += run_shape(shape, methods, args, Path(work))
        if not args.no_plan_cost:
            print("planning cost: the default study (cold, then warm cache) and a 3B config ...", flush=True)
            cost = plan_cost(args, Path(work))
    print_results(rows, cost, args, time.perf_counter() - t_all)
    C.write_json("plan_accuracy", {"rows": rows, "summary": summary(rows), "plan_cost": cost,
                                   "threads": args.threads, "train_size": args.train_size,
                                   "batch_size": args.batch_size,
                                   "decoder_train_size": args.decoder_train_size,
                                   "wall_seconds": time.perf_counter() - t_all}, args.json)
    return 0


def print_results(rows: list[dict], cost: dict, args, wall: float) -> None:
    table = [[f"{r['shape']} {r['method']}", r["set"], r["status"],
              {True: "yes", False: "NO", None: "-"}[r["params_exact"]],
              C.fmt(r["memory_pred_mb"], ".1f"), C.fmt(r["memory_meas_mb"], ".1f"),
              C.fmt(r["memory_err_pct"], "+.1f"), C.fmt(r["time_pred_s"], ".2f"),
              C.fmt(r["time_meas_s"], ".2f"), C.fmt(r["time_err_pct"], "+.1f"), C.fmt(r["load_avg"], ".1f"),
              C.fmt(r["other_cores_busy"], ".2f")]
             for r in rows]
    s = summary(rows)

    def line(prefix: str, what: str) -> str:
        def pct(key: str) -> str:
            return C.fmt(s[prefix + key], ".1f") + "%"

        return (f"{what}: memory |error| median {pct('memory_median_abs_err_pct')}, worst "
                f"{pct('memory_worst_abs_err_pct')}; time |error| median {pct('time_median_abs_err_pct')}, "
                f"worst {pct('time_worst_abs_err_pct')}")

    notes = [line("", "all trials") + " (targets: memory <= 10% / <= 25%, time <= 15% / <= 35%)",
             line("fit_", "fit set (encoder, long: plan/memory.py's constants were fitted there)"),
             line("held_out_", "held-out shapes (wide, decoder, generate, cuda)"),
             f"parameters exact for every trial that ran: {'yes' if s['params_exact'] else 'NO'}; timings on "
             f"a shared machine move with its load (columns load and other cores)"]
    for r in rows:
        if r["status"] != "ok":
            why = (r["error"] or "").strip().splitlines() or [""]
            notes.append(f"{r['shape']} {r['method']}: {r['status']} ({why[0][:150]})")
    for label in ("cold", "warm"):
        c = cost.get(f"study_{label}")
        if c:
            notes.append(f"plan of the whole default study ({c['methods']} methods), {label} calibration "
                         f"cache: {c['wall_s']:.1f} s wall, {c['cpu_s']:.1f} s CPU, peak RSS "
                         f"{c['peak_rss_mb']:.0f} MiB ({cost['threads']} thread(s); time: "
                         f"{', '.join(c['time_how'])})")
    if cost.get("config_3b"):
        c = cost["config_3b"]
        notes.append(f"3B Llama from its config ({c['total_params'] / 1e9:.2f}B parameters, Full and "
                     f"LoRA-r8, CUDA plan): {c['wall_s']:.1f} s wall, peak RSS {c['peak_rss_mb']:.0f} MiB "
                     f"(target < 2048)")
    notes.append(f"whole run {wall / 60:.1f} min")
    C.print_table("Plan vs measured: net peak training memory (MiB) and training time (s)",
                  ["shape / method", "set", "status", "params exact", "mem pred", "mem meas", "mem err %",
                   "time pred", "time meas", "time err %", "load", "other cores"], table, notes)


if __name__ == "__main__":
    raise SystemExit(main())
