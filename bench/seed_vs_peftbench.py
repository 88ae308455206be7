"""Seed notebook pipeline vs peftbench: wall time and test accuracy per method, on the same examples.

The seed pipeline is re-created as the notebook wrote it (transformers Trainer, padding="max_length" to 128,
learning rate 2e-5 for every method, weight decay 0.01, model re-loaded per method, every trial in this one
process), with the three fixes it needs to run at all (see MEASUREMENT.md): BitFit built by hand, prefix
tuning without `prefix_length`, and a compute_metrics so accuracy exists. peftbench runs the same methods
through its real runner (fresh process per trial) into a temporary store. Both train on the same texts (the
first --train-size rows of peftbench's training pool) and are tested on the same --eval-size test rows.

    .venv/bin/python bench/seed_vs_peftbench.py                      # defaults: a few minutes on 2 cores
    .venv/bin/python bench/seed_vs_peftbench.py --train-size 32 --eval-size 32 --quick-data   # short run
    .venv/bin/python bench/seed_vs_peftbench.py --smoke       # seconds, on a tiny random BERT: checks it runs
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C

SEED_LR = 2e-5
SEED_MAX_LENGTH = 128
SEED_WEIGHT_DECAY = 0.01
SEED_EVAL_BATCH = 32
DEFAULT_METHODS = "Full,LoRA-r8,BitFit,PrefixTuning-len16"
CHANCE_POINTS = 0.02  # "at chance": test accuracy no more than 2 points above the majority-class rate
# --smoke: a hand-built method and a peft one on a tiny random BERT (at chance, so the reruns run too), one thread
SMOKE = {"threads": 1, "methods": "BitFit,PrefixTuning-len16", "train_size": 32, "epochs": 1, "batch_size": 8, "eval_size": 32}


# --- the seed notebook's pipeline ---------------------------------------------------------------------
def seed_peft_config(name: str, total_steps: int):
    """The notebook's get_peft_configurations(), minus what does not exist in peft 0.21 (prefix_length,
    BitFitConfig). None means "no peft wrapper" (Full, BitFit)."""
    from peft import AdaLoraConfig, LoraConfig, PrefixTuningConfig, PromptEncoderConfig, TaskType

    qkv = ["query", "key", "value"]
    lora = {"LoRA-r4": (4, 16), "LoRA-r8": (8, 16), "LoRA-r16": (16, 32), "LoRA-r32": (32, 64)}
    if name in lora:
        r, alpha = lora[name]
        return LoraConfig(r=r, lora_alpha=alpha, target_modules=qkv, lora_dropout=0.1, bias="none",
                          task_type=TaskType.SEQ_CLS)
    if name == "LoRA-AllLayers":
        return LoraConfig(r=8, lora_alpha=16, target_modules=["query", "key", "value", "dense", "output.dense"],
                          lora_dropout=0.1, bias="none", task_type=TaskType.SEQ_CLS)
    if name == "AdaLoRA":  # peft >= 0.14 refuses AdaLoRA without total_step; the notebook's lacked it
        return AdaLoraConfig(r=8, lora_alpha=16, target_modules=qkv, lora_dropout=0.1,
                             task_type=TaskType.SEQ_CLS, total_step=max(total_steps, 10))
    if name.startswith("PrefixTuning-len"):
        return PrefixTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=int(name.rsplit("len", 1)[1]))
    if name.startswith("PromptTuning-len"):
        return PromptEncoderConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=int(name.rsplit("len", 1)[1]),
                                   encoder_hidden_size=128)
    if name in ("Full", "BitFit"):
        return None
    raise SystemExit(f"the seed notebook has no method {name!r}; choose from Full, LoRA-r4/8/16/32, "
                     f"LoRA-AllLayers, AdaLoRA, PrefixTuning-len16/32, PromptTuning-len16/32, BitFit")


def seed_build(name: str, model_path: str, total_steps: int):
    from peft import get_peft_model
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
    if name == "BitFit":  # peft has no BitFitConfig: freeze all but the biases and the classifier
        for n, p in model.named_parameters():
            p.requires_grad_(n.endswith(".bias") or n.startswith("classifier."))
        return model
    cfg = seed_peft_config(name, total_steps)
    return model if cfg is None else get_peft_model(model, cfg)


def seed_tokenize(tokenizer, texts: list[str], labels: list[int]):
    """The notebook's preprocessing: datasets.map with padding="max_length" to 128, torch format."""
    import datasets

    ds = datasets.Dataset.from_dict({"sentence": texts, "label": labels, "idx": list(range(len(texts)))})
    ds = ds.map(lambda ex: tokenizer(ex["sentence"], truncation=True, padding="max_length",
                                     max_length=SEED_MAX_LENGTH), batched=True)
    ds = ds.remove_columns(["sentence", "idx"]).rename_column("label", "labels")
    ds.set_format("torch")
    return ds


def _accuracy(eval_pred) -> dict[str, float]:
    logits, labels = eval_pred
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


def seed_trial(name: str, lr: float, model_path: str, train_ds, test_ds, args, workdir: str) -> dict[str, Any]:
    """One method as the notebook runs it: load, wrap, Trainer.train(), Trainer.evaluate()."""
    from transformers import Trainer, TrainingArguments

    quiet = contextlib.nullcontext() if args.verbose else _silenced()
    steps = -(-len(train_ds) // args.batch_size) * args.epochs
    with quiet:
        t0 = time.perf_counter()
        model = seed_build(name, model_path, steps)
        t_loaded = time.perf_counter()
        targs = TrainingArguments(
            output_dir=f"{workdir}/results", learning_rate=lr, per_device_train_batch_size=args.batch_size,
            num_train_epochs=args.epochs, weight_decay=SEED_WEIGHT_DECAY,
            logging_steps=max(1, len(train_ds) // args.batch_size // 4),  # the notebook's; 0 is refused
            save_strategy="no", report_to="none")
        trainer = Trainer(model=model, args=targs, train_dataset=train_ds)
        t_train0 = time.perf_counter()
        trainer.train()
        t_train1 = time.perf_counter()
        eargs = TrainingArguments(output_dir=f"{workdir}/eval_results", per_device_eval_batch_size=SEED_EVAL_BATCH,
                                  report_to="none")
        result = Trainer(model=model, args=eargs, eval_dataset=test_ds, compute_metrics=_accuracy).evaluate()
        t_eval1 = time.perf_counter()
        if not args.no_seed_inference:
            seed_inference(model, test_ds)
        t1 = time.perf_counter()
    del trainer, model
    return {"method": name, "learning_rate": lr, "seconds": t1 - t0, "load_build_seconds": t_loaded - t0,
            "train_seconds": t_train1 - t_train0, "eval_seconds": t_eval1 - t_train1,
            "inference_seconds": t1 - t_eval1, "accuracy": result["eval_accuracy"], "train_steps": steps}


def seed_inference(model, ds) -> float:
    """The notebook's measure_inference_efficiency(model, eval_subset): batch 1 over every evaluation row
    (padded to 128, labels passed, so the loss is computed too), under no_grad. Returns rows per second."""
    import torch

    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(ds, batch_size=1):
            model(**{k: v for k, v in batch.items() if isinstance(v, torch.Tensor)})
    return len(ds) / (time.perf_counter() - t0)


@contextlib.contextmanager
def _silenced():
    """The Trainer prints progress bars and loss dicts; keep the bench's own table readable."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        yield


# --- peftbench -----------------------------------------------------------------------------------------
def run_peftbench(methods: list[str], data_spec, args, db: Path) -> dict[str, Any]:
    from peftbench.config.spec import TrainSpec, TrialSpec
    from peftbench.execute.isolation import context
    from peftbench.execute.local import LocalExecutor
    from peftbench.methods import parse_method
    from peftbench.store.db import Store
    from peftbench.studies.runner import run_trials

    train = TrainSpec(train_size=args.train_size, epochs=args.epochs, batch_size=args.batch_size)
    specs = [TrialSpec(study="bench-seed-vs-peftbench", method=parse_method(m), model=args.model, data=data_spec,
                       train=train, seed=0, eval_size=args.eval_size) for m in methods]
    executor = LocalExecutor(workers=1)
    executor.threads = args.threads  # the same torch threads as the seed pipeline in this process
    # The forkserver imports torch/transformers/peft once per study; timed apart (a no-op child waits for
    # those imports), since the seed's own imports happened in this process before anything was timed.
    t0 = time.perf_counter()
    warm = context().Process(target=time.sleep, args=(0,))
    warm.start()
    warm.join()
    forkserver_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = run_trials(specs, db, executor)
    wall = time.perf_counter() - t0
    with Store(db, create=False) as store:
        rows = {r["method"]: r for r in store.rows()}
        records = {r["method"]: r for r in store.records(include_failed=True).to_dict("records")}
    per_method = {}
    for m in methods:
        rec, row = records.get(m, {}), rows.get(m, {})
        per_method[m] = {
            "status": rec.get("status"), "error": rec.get("error"), "learning_rate": rec.get("learning_rate"),
            "trial_seconds": rec.get("trial_seconds"), "train_seconds": rec.get("train_seconds"),
            "eval_seconds": rec.get("eval_seconds"), "inference_seconds": rec.get("inference_seconds"),
            "startup_seconds": rec.get("startup_seconds"),
            "driver_wall_seconds": (row["finished_at"] - row["started_at"])
            if row.get("finished_at") and row.get("started_at") else None,
            "accuracy": rec.get("accuracy"), "test_size": rec.get("test_size"), "train_steps": rec.get("train_steps"),
        }
    return {"forkserver_start_seconds": forkserver_s, "run_trials_wall_seconds": wall,
            "summary": vars(summary), "methods": per_method}


# --- the comparison ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated presets (default {DEFAULT_METHODS})")
    # Defaults: the default tradeoff study's work (studies.TRADEOFF_TRAIN, DataSpec().test_size).
    p.add_argument("--train-size", type=int, default=1200, help="training examples (default 1200, the default study's)")
    p.add_argument("--epochs", type=int, default=2, help="epochs, both pipelines (default 2, the default study's)")
    p.add_argument("--batch-size", type=int, default=16, help="batch size, both pipelines (default 16, the default study's)")
    p.add_argument("--eval-size", type=int, default=800,
                   help="test rows both pipelines are scored on (default 800, the default study's test set)")
    p.add_argument("--quick-data", action="store_true",
                   help="peftbench's quick held-out sizes (validation 100, test 300, OOD 100, perturbed 50) "
                        "instead of DataSpec's defaults (200, 800, 300, 150)")
    p.add_argument("--no-rerun", action="store_true",
                   help="do not re-run the seed pipeline at peftbench's learning rate where 2e-5 stays at chance")
    p.add_argument("--no-seed-inference", action="store_true",
                   help="skip the notebook's batch-1 inference pass over the evaluation rows in the seed pipeline "
                        "(peftbench still measures latency and throughput)")
    p.add_argument("--verbose", action="store_true", help="show the Trainer's own output")
    p.add_argument("--model", default=None,
                   help="a local model folder for both pipelines (default: the embedded model; --smoke: a tiny "
                        "random BERT)")
    args = C.bench_args(p, argv, SMOKE)
    if args.batch_size > args.train_size:
        p.error("--batch-size is larger than --train-size")

    import numpy as np
    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from peftbench.config.spec import DataSpec
    from peftbench.methods import parse_method
    from peftbench.models.loading import embedded_model_path
    from peftbench.studies.definitions import QUICK_DATA

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    C.warn_if_busy(args.threads)
    methods = C.split_methods(args.methods)
    pb_lr = {m: parse_method(m).learning_rate for m in methods}
    if args.smoke:
        from _tiny_models import smoke_model

        args.model = smoke_model(args.model, "bert")
        data_spec = C.small_data_spec(20, 40, 20, 10)  # held-out sets peftbench prepares: small too
    else:
        data_spec = QUICK_DATA if args.quick_data else DataSpec()
    model_path = args.model or embedded_model_path()
    args.model = model_path

    train_texts, train_labels, test_texts, test_labels = C.embedded_texts(data_spec, args.train_size,
                                                                          args.eval_size)
    majority = max(np.mean(test_labels), 1 - np.mean(test_labels))
    print(f"{len(train_texts)} training texts, {len(test_texts)} test rows (majority class {majority:.1%}), "
          f"{args.epochs} epoch(s), batch {args.batch_size}, {args.threads} torch thread(s)", flush=True)

    # Seed pipeline: tokenize once (as the notebook does), then each method in this process.
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    with _silenced():
        train_ds = seed_tokenize(tokenizer, train_texts, train_labels)
        test_ds = seed_tokenize(tokenizer, test_texts, test_labels)
    seed_tokenize_s = time.perf_counter() - t0
    seed_runs: dict[str, dict] = {}
    seed_reruns: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-seed-") as work:
        for m in methods:
            print(f"seed pipeline: {m} at lr {SEED_LR:g} ...", flush=True)
            seed_runs[m] = r = seed_trial(m, SEED_LR, model_path, train_ds, test_ds, args, work)
            r["at_chance"] = at_chance(r["accuracy"], majority)
            if r["at_chance"] and not args.no_rerun and pb_lr[m] != SEED_LR:
                print(f"seed pipeline: {m} is at chance at 2e-5; again at peftbench's lr {pb_lr[m]:g} ...", flush=True)
                seed_reruns[m] = rr = seed_trial(m, pb_lr[m], model_path, train_ds, test_ds, args, work)
                rr["at_chance"] = at_chance(rr["accuracy"], majority)
        print(f"peftbench: {', '.join(methods)} through run_trials (fresh process per trial) ...", flush=True)
        pb = run_peftbench(methods, data_spec, args, Path(work) / "bench.db")

    # --- table ---
    rows, figures = [], []
    for m in methods:
        b = pb["methods"][m]
        for label, r in (("seed", seed_runs[m]), ("seed@pb-lr", seed_reruns.get(m))):
            if r is None:
                continue
            ratio = _ratio(r["seconds"], b["trial_seconds"])
            ratio_wall = _ratio(r["seconds"], b["driver_wall_seconds"])
            ratio_train = _ratio(r["train_seconds"], b["train_seconds"])
            note = []
            if r["at_chance"]:
                note.append("seed~chance")
            if b["accuracy"] is not None and at_chance(b["accuracy"], majority):
                note.append("pb~chance")
            if b["status"] != "ok":
                note.append(f"peftbench {b['status']}")
            rows.append([m if label == "seed" else f"  {m} (rerun)", f"{r['learning_rate']:g}",
                         C.fmt(r["seconds"], ".1f"), C.fmt(r["train_seconds"], ".1f"),
                         C.fmt(b["trial_seconds"], ".1f"), C.fmt(b["driver_wall_seconds"], ".1f"),
                         C.fmt(b["train_seconds"], ".1f"), C.fmt(_measuring(b), ".1f"), C.fmt(ratio, ".2f"), C.fmt(ratio_train, ".2f"),
                         C.fmt(r["accuracy"], ".3f"), C.fmt(b["accuracy"], ".3f"), f"{b['learning_rate']:g}"
                         if b["learning_rate"] else "-", "; ".join(note)])
            figures.append({"method": m, "seed_run": label, "seed": r, "peftbench": b, "speedup_trial": ratio,
                            "speedup_driver_wall": ratio_wall, "speedup_train_only": ratio_train})

    seed_total = seed_tokenize_s + sum(r["seconds"] for r in seed_runs.values())
    seed_total_equal = seed_tokenize_s + sum(seed_reruns.get(m, seed_runs[m])["seconds"] for m in methods)
    pb_total = pb["run_trials_wall_seconds"]
    seed_train = sum(r["train_seconds"] for r in seed_runs.values())
    seed_train_equal = sum(seed_reruns.get(m, seed_runs[m])["train_seconds"] for m in methods)
    pb_train = sum(b["train_seconds"] or 0 for b in pb["methods"].values())
    notes = [
        ("speed-up = seed seconds / peftbench seconds (>1: peftbench is faster). 'seed s' = load + build + "
        "Trainer.train + Trainer.evaluate + the notebook's batch-1 inference pass over the evaluation rows; 'pb trial s' = the record's trial_seconds (child entered "
        "-> record produced); 'pb wall s' = the store's started -> finished (spawn and storing included)."),
        ("peftbench does more per trial than the seed: validation set, out-of-domain set, 4 perturbation sets, "
        "batch-1 latency, batch-32 throughput, adapter size on disk, FLOP count, and merged-model inference for "
        "mergeable methods ('pb meas s' = the record's eval_seconds + inference_seconds). 'x train' compares "
        "training alone (seed Trainer.train vs peftbench train_seconds)."),
        (f"seed lr is the notebook's 2e-5 for every method; '(rerun)' rows re-run the seed pipeline at "
        f"peftbench's learning rate where 2e-5 left the method at chance (~chance: test accuracy no more than "
        f"{CHANCE_POINTS * 100:.0f} points above the majority-class rate, {majority:.1%}), so that row's speed-up "
        f"compares equal work."),
        "",
        (f"study totals: seed {seed_total:.1f} s (tokenize {seed_tokenize_s:.1f} s + methods at 2e-5); "
        f"peftbench {pb_total:.1f} s (run_trials: data preparation + trials + store; forkserver start "
        f"{pb['forkserver_start_seconds']:.1f} s more, once per study)"),
        (f"  speed-up, whole study:              {C.fmt(_ratio(seed_total, pb_total), '.2f')} "
        f"(with forkserver start: {C.fmt(_ratio(seed_total, pb_total + pb['forkserver_start_seconds']), '.2f')})"),
        (f"  speed-up, whole study, equal work:  {C.fmt(_ratio(seed_total_equal, pb_total), '.2f')} "
        f"(seed {seed_total_equal:.1f} s using the reruns where 2e-5 was at chance)"),
        (f"  speed-up, training only:            {C.fmt(_ratio(seed_train, pb_train), '.2f')} (seed {seed_train:.1f} s, "
        f"peftbench {pb_train:.1f} s); equal work: {C.fmt(_ratio(seed_train_equal, pb_train), '.2f')}"),
    ]
    C.print_table("Seed notebook pipeline vs peftbench (same training texts, same test rows)",
                  ["method", "seed lr", "seed s", "seed train s", "pb trial s", "pb wall s", "pb train s", "pb meas s",
                   "speed-up", "x train", "seed acc", "pb acc", "pb lr", "note"], rows, notes)
    C.write_json("seed_vs_peftbench", {
        "settings": {"methods": methods, "model": args.model, "smoke": args.smoke, "train_size": args.train_size, "epochs": args.epochs,
                     "batch_size": args.batch_size, "eval_size": len(test_texts), "threads": args.threads,
                     "data_spec": vars(data_spec) if hasattr(data_spec, "__dict__") else str(data_spec),
                     "majority_rate": majority, "seed_lr": SEED_LR},
        "rows": figures,
        "totals": {"seed_tokenize_seconds": seed_tokenize_s, "seed_seconds": seed_total,
                   "seed_seconds_equal_work": seed_total_equal, "peftbench_run_trials_seconds": pb_total,
                   "peftbench_forkserver_start_seconds": pb["forkserver_start_seconds"],
                   "speedup_study": _ratio(seed_total, pb_total),
                   "speedup_study_equal_work": _ratio(seed_total_equal, pb_total),
                   "seed_train_seconds": seed_train, "seed_train_seconds_equal_work": seed_train_equal,
                   "peftbench_train_seconds": pb_train, "speedup_train_only": _ratio(seed_train, pb_train),
                   "speedup_train_only_equal_work": _ratio(seed_train_equal, pb_train)},
        "peftbench_summary": pb["summary"],
    }, args.json)
    failed = [m for m, b in pb["methods"].items() if b["status"] != "ok"]
    if failed:
        print(f"peftbench trials that did not finish: {', '.join(failed)}", file=sys.stderr)
        for m in failed:
            print(f"  {m}: {(pb['methods'][m]['error'] or '').strip().splitlines()[:1]}", file=sys.stderr)
        return 1
    return 0


def at_chance(accuracy: float, majority: float) -> bool:
    """No better than always answering the majority class (within CHANCE_POINTS); a model that scores below
    the majority rate (e.g. always the minority class) has learned nothing either."""
    return accuracy <= majority + CHANCE_POINTS


def _measuring(b: dict) -> float | None:
    if b["eval_seconds"] is None or b["inference_seconds"] is None:
        return None
    return b["eval_seconds"] + b["inference_seconds"]


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


if __name__ == "__main__":
    sys.exit(main())
