"""One trial: TrialSpec + prepared data -> one self-describing record (a plain dict).

Runs inside a fresh process (see execute/), so its memory figures belong to this trial alone.
"""

from __future__ import annotations

import os
import random
import time
import traceback
from typing import Any, Callable

import numpy as np
import torch

from peftbench.config.spec import TrialSpec
from peftbench.data.prepared import PreparedData, TokenizedSet
from peftbench.measure import flops as fl
from peftbench.measure import inference, memory, params, size
from peftbench.measure.machine_load import LoadProbe, available_cores
from peftbench.measure.provenance import provenance
from peftbench.methods import BuildContext, build_model, family
from peftbench.models.gpu_options import apply_gpu_options, check_gpu_options
from peftbench.models.loading import load_classifier
from peftbench.stats.predictions import encode
from peftbench.tasks.classify import evaluate as ev
from peftbench.tasks.classify.forgetting import forgetting_view
from peftbench.trial.rungs import rungs_for
from peftbench.trial.train import total_steps, train

RECORD_VERSION = 2
Progress = Callable[[dict[str, Any]], None]


def resolve_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from peftbench.errors import PeftbenchError

            raise PeftbenchError("--device cuda was asked for, but no CUDA GPU is visible")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def quiet_library_warnings() -> None:
    """Library deprecation chatter would drown the progress display; real errors still raise."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*Unsupported layer type.*")
    warnings.filterwarnings("ignore", message=".*Converting a tensor with requires_grad=True to a scalar.*")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def representative_batch(data, batch_size: int, pad_id: int) -> dict[str, torch.Tensor]:
    """The batch_size training rows around the median length: what a typical bucketed step sees."""
    order = np.argsort(data.lengths, kind="stable")
    mid = max(0, len(order) // 2 - batch_size // 2)
    return data.batch(order[mid:mid + batch_size], pad_id)


def _test_subset(spec: TrialSpec, data: PreparedData) -> TokenizedSet:
    return data.test.take(spec.eval_size) if spec.eval_size else data.test


def run_trial(spec: TrialSpec, data: PreparedData, progress: Progress | None = None,
              spawned_at: float | None = None) -> dict[str, Any]:
    """Train and measure. Raises on failure; the executor turns exceptions into failed records."""
    if spec.data.task == "generate":
        from peftbench.tasks.generate.trial import run_generation_trial

        return run_generation_trial(spec, data, progress, spawned_at)
    entered, device, say, record = begin_trial(spec, data, progress)
    train_set = data.train_pool.take(spec.train.train_size)
    base = load_base(load_classifier, spec, device, data.num_labels)
    lm_view = forgetting_view(base, spec.model, device)  # a decoder classifier: general text, its LM head
    base_params, heads = params.base_parameter_count(base)
    record["head_modules"] = heads
    record["head_learning_rate"] = spec.method.head_learning_rate
    steps = total_steps(len(train_set), spec.train)
    model = build_model(base, spec.method, BuildContext(total_steps=steps, num_labels=data.num_labels))
    rungs = rungs_for(spec, data, model, device, steps)  # None unless a --tune candidate that may be pruned
    train_and_measure(record, model, base_params, heads, train_set, spec, data, device, steps, say, rungs,
                      entered, spawned_at)

    say({"phase": "evaluate"})
    t_eval = time.perf_counter()
    bf16 = spec.train.bf16
    # Validation: every choice (collapse mark, tuning, rank, winners) reads this, never the test split.
    val_preds, val_loss = ev.predict(model, data.validation, device, data.pad_token_id, bf16=bf16)
    val = ev.metrics(data.validation.labels, val_preds, val_loss)
    record.update({f"val_{k}": v for k, v in val.items()})
    record.update(val_predictions=encode(val_preds), val_labels=encode(data.validation.labels),
                  val_majority_rate=ev.majority_rate(data.validation.labels))
    record["collapsed"], record["collapse_reason"] = ev.detect_collapse(data.validation.labels, val_preds)
    if rungs is not None and rungs.last_rung(val["accuracy"]):
        # stopped by the search: validation figures only, the test split is never read
        return rungs.pruned_record(record, entered)
    if rungs is not None:
        record.update(rungs.fields())
    # The test split: read once, here, for the reported figures only.
    test_set = _test_subset(spec, data)
    test_preds, test_loss = ev.predict(model, test_set, device, data.pad_token_id, bf16=bf16)
    test = ev.metrics(test_set.labels, test_preds, test_loss)
    record.update({k: v for k, v in test.items() if k != "loss"}, eval_loss=test["loss"],
                  test_size=len(test_set), test_predictions=encode(test_preds),
                  test_labels=encode(test_set.labels), test_majority_rate=ev.majority_rate(test_set.labels))
    record.update(generalization(model, data, test_preds, device, bf16))
    if lm_view is not None:
        record.update(lm_view.measure(model, device))
    record["eval_seconds"] = time.perf_counter() - t_eval

    say({"phase": "inference"})
    t_inf = time.perf_counter()
    memory.release_and_reset_peak()
    record.update(inference.latency_ms(model, data.test, spec.train.latency_runs, device, data.pad_token_id))
    record["throughput_per_s"] = inference.throughput_per_s(model, data.test, spec.train.throughput_batches,
                                                            device, data.pad_token_id)
    return finish_inference(record, model, spec, data, device, merged_measurements, t_inf, entered)


def finish_inference(record: dict[str, Any], model, spec: TrialSpec, data, device: torch.device, merged,
                     t_inf: float, entered: float) -> dict[str, Any]:
    """What every task does after its unmerged inference figures: memory, the shipped size, the merged
    figures (`merged(model, data, spec, device)`) where the method can merge, and the trial's times."""
    record["inference_peak_rss_mb"] = memory.peak_rss_mb()
    record["adapter_bytes"] = size.shipped_bytes(model)
    fam = family(spec.method.family)
    record["can_merge"] = fam.can_merge
    if fam.can_merge:
        try:
            record.update(merged(model, data, spec, device))
        except Exception as exc:  # noqa: BLE001 - a merge peft cannot do costs the merged figures, not the trial
            # e.g. peft's IA3 unload assumes every modules_to_save module has a .weight; a trained pooler has not
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            record["merge_error"] = f"{type(exc).__name__}: {first}"
    record["inference_seconds"] = time.perf_counter() - t_inf
    record["trial_seconds"] = time.time() - entered
    record["finished_at"] = time.time()
    return record


def load_base(loader, spec: TrialSpec, device: torch.device, *args):
    """A fresh base from `loader` (a classifier or a causal LM), on the trial's device with its GPU options
    (4-bit, gradient checkpointing) applied, ready for the method."""
    base = loader(spec.model, *args, load_in_4bit=spec.train.load_in_4bit, device=device)
    return apply_gpu_options(base, spec.train)


def to_device(model, spec: TrialSpec, device: torch.device):
    """Move a model to the trial's device; a 4-bit base is placed there by its loader and stays."""
    return model if spec.train.load_in_4bit else model.to(device)


def begin_trial(spec: TrialSpec, data, progress: Progress | None):
    """What every task's trial does first: the memory baseline, seeds, the device (and a refusal of options
    it cannot honour), and the record's identity and provenance. Returns (entered, device, say, record)."""
    entered = time.time()
    quiet_library_warnings()
    baseline_rss = memory.current_rss_mb()
    seed_everything(spec.seed)
    device = resolve_device(spec.train.device)
    memory.cuda_reset(device)
    check_gpu_options(spec.train, device, spec.method.family)
    say = progress or (lambda _event: None)
    return entered, device, say, start_record(spec, data, device, baseline_rss)


def start_record(spec: TrialSpec, data, device: torch.device, baseline_rss: float) -> dict[str, Any]:
    """The record's identity and provenance, before anything is measured."""
    record: dict[str, Any] = {"record_version": RECORD_VERSION, "trial_id": spec.trial_id,
                              "study": spec.study, "method": spec.method.name, "family": spec.method.family,
                              "seed": spec.seed, "train_size": spec.train.train_size,
                              "epochs": spec.train.epochs, "batch_size": spec.train.batch_size,
                              "learning_rate": spec.method.learning_rate, "model": spec.model,
                              "task": spec.data.task, "baseline_rss_mb": baseline_rss, "device": str(device)}
    record["provenance"] = {**provenance(device), "data": data.provenance}
    return record


def train_and_measure(record: dict[str, Any], model, base_params: int, heads: list[str], train_set, spec: TrialSpec,
                      data, device: torch.device, steps: int, say: Progress, rungs, entered: float,
                      spawned_at: float | None) -> None:
    """Parameter accounting, FLOPs of a representative step, then training, its timing and its memory: the
    same for every task (the set's own `batch` makes the task's batches)."""
    record.update(params.count_parameters(model, base_params, heads))
    record["saved_params"] = params.saved_parameter_count(model)
    to_device(model, spec, device)
    batch = {k: v.to(device) for k, v in representative_batch(train_set, spec.train.batch_size,
                                                              data.pad_token_id).items()}
    model.train()
    step_flops, fwd_flops = fl.train_step_flops(model, batch)
    batch_tokens = int(batch["attention_mask"].sum())
    record.update(flops_per_step=step_flops, forward_flops_per_step=fwd_flops, flops_batch_tokens=batch_tokens,
                  flops_per_token=step_flops / max(batch_tokens, 1),
                  flops_batch_shape=list(batch["input_ids"].shape))
    del batch

    say({"phase": "train", "step": 0, "total": steps})
    load_before, probe = os.getloadavg()[0], LoadProbe.start()
    result = train(model, train_set, spec.train, spec.method.learning_rate, spec.seed, device,
                   data.pad_token_id,
                   on_step=lambda s, t, loss: say({"phase": "train", "step": s, "total": t, "loss": loss}),
                   head_lr=spec.method.head_learning_rate, head_names=tuple(heads), checkpoint=rungs)
    # tokens trained on: every row's real tokens, once per epoch it was seen (padding not counted)
    epochs_seen = result.samples / max(len(train_set), 1)
    train_tokens = float(train_set.lengths.sum()) * epochs_seen
    record.update(
        startup_seconds=(result.first_step_time - spawned_at) if spawned_at else None,
        entered_to_first_step_seconds=result.first_step_time - entered,
        train_seconds=result.seconds, seconds_per_epoch=result.seconds / spec.train.epochs,
        train_steps=result.steps, train_samples=result.samples,
        train_samples_per_s=result.samples / result.seconds, final_train_loss=result.final_loss,
        train_tokens=train_tokens, train_tokens_per_s=train_tokens / result.seconds,
        # FLOPs of the representative step x steps: an estimate, since batches vary in length.
        train_flops=step_flops * result.steps,
        achieved_flops_per_s=step_flops * result.steps / result.seconds,
        peak_rss_mb=memory.peak_rss_mb(),
    )
    # Training memory is what the trial added to its process: the baseline holds the preloaded libraries.
    record["peak_rss_net_mb"] = record["peak_rss_mb"] - record["baseline_rss_mb"]
    record.update(timing_load(result, device, load_before, probe.other_cores()))
    record["peak_cuda_allocated_mb"], record["peak_cuda_reserved_mb"] = memory.cuda_peaks_mb(device)


def generalization(model, data: PreparedData, test_preds: np.ndarray, device: torch.device,
                   bf16: bool) -> dict[str, Any]:
    """Out-of-domain figures, and the accuracy drop under each perturbation of the first test rows.

    A drop is perturbed minus clean accuracy on the same rows (negative = worse), so a collapsed model
    shows no drop rather than perfect robustness, and noise above zero stays visibly noise."""
    out: dict[str, Any] = {}
    if data.ood is not None:
        ood_preds, _ = ev.predict(model, data.ood, device, data.pad_token_id, bf16=bf16)
        ood = ev.metrics(data.ood.labels, ood_preds)
        out.update(ood_accuracy=ood["accuracy"], ood_balanced_accuracy=ood["balanced_accuracy"],
                   ood_f1=ood["f1"], ood_predictions=encode(ood_preds), ood_labels=encode(data.ood.labels))
    else:
        out.update(ood_accuracy=None, ood_balanced_accuracy=None, ood_f1=None)
    out["perturbations_skipped"] = dict(getattr(data, "perturbations_skipped", {}) or {})
    if data.perturbed:
        n = len(next(iter(data.perturbed.values())))
        if len(test_preds) < n:  # evaluation was restricted to fewer rows than were perturbed
            test_preds, _ = ev.predict(model, data.test.take(n), device, data.pad_token_id, bf16=bf16)
        clean = float((test_preds[:n] == data.test.labels[:n]).mean())
        out["perturbation_rows"] = n
        out["clean_subset_accuracy"] = clean
        drops = []
        for kind, pset in data.perturbed.items():
            preds, _ = ev.predict(model, pset, device, data.pad_token_id, bf16=bf16)
            accuracy = float((preds == pset.labels).mean())
            out[f"perturbed_{kind}_accuracy"] = accuracy
            out[f"perturbed_{kind}_predictions"] = encode(preds)
            out[f"robustness_drop_{kind}"] = accuracy - clean
            drops.append(accuracy - clean)
        out["robustness_drop"] = float(np.mean(drops)) if drops else None
    return out


def timing_load(result, device: torch.device, load_before: float,
                other_cores: float | None = None) -> dict[str, Any]:
    """CPU time beside wall time, the load, and the cores other processes kept busy meanwhile
    (measure/machine_load.py): a timing taken while other work shared the machine is flagged, not stored
    as if clean. On CPU, a quiet machine gives CPU time close to wall x threads and ~0 other cores."""
    threads = torch.get_num_threads()
    load_after = os.getloadavg()[0]
    cores = default_threads()
    utilisation = result.cpu_seconds / (result.seconds * threads) if result.seconds > 0 else None
    out = {"train_cpu_seconds": result.cpu_seconds, "threads": threads, "cpu_utilisation": utilisation,
           "load_avg_start": load_before, "load_avg_end": load_after, "other_cores_busy": other_cores,
           "timing_contended": False, "timing_note": None}
    if device.type != "cpu" or utilisation is None:
        return out
    reasons = []
    if utilisation < CONTENDED_UTILISATION:
        reasons.append(f"CPU time {result.cpu_seconds:.0f} s over {result.seconds:.0f} s x {threads} threads "
                       f"({utilisation:.0%})")
    # this trial's own threads account for up to `threads` of the load average
    if max(load_before, load_after) > cores + CONTENDED_EXTRA_LOAD:
        reasons.append(f"load average {max(load_before, load_after):.1f} on {cores} cores")
    if other_cores is not None and other_cores > CONTENDED_OTHER_CORES:
        reasons.append(f"other processes kept {other_cores:.1f} of {cores} cores busy")
    if reasons:
        out.update(timing_contended=True, timing_note="other work shared the machine: " + "; ".join(reasons))
    return out


# Thresholds for flagging a CPU timing as contended (see timing_load).
CONTENDED_UTILISATION = 0.6
CONTENDED_EXTRA_LOAD = 1.0
CONTENDED_OTHER_CORES = 0.25  # a quiet machine's background (this session's shell, logging) stays near 0.05


def merged_measurements(model, data: PreparedData, spec: TrialSpec, device: torch.device) -> dict[str, Any]:
    """Merge the adapter into the base weights and measure inference again (and check it agrees)."""
    probe = {k: v.to(device) for k, v in data.test.batch(np.arange(min(16, len(data.test))),
                                                        data.pad_token_id).items() if k != "labels"}
    with torch.inference_mode():
        model.eval()
        before = model(**probe).logits.float()
    merged = model.merge_and_unload()
    with torch.inference_mode():
        after = merged(**probe).logits.float()
    lat = inference.latency_ms(merged, data.test, spec.train.latency_runs, device, data.pad_token_id)
    return {
        "merged_latency_p50_ms": lat["latency_p50_ms"], "merged_latency_p95_ms": lat["latency_p95_ms"],
        "merged_latency_p25_ms": lat["latency_p25_ms"], "merged_latency_p75_ms": lat["latency_p75_ms"],
        "merged_throughput_per_s": inference.throughput_per_s(merged, data.test, spec.train.throughput_batches,
                                                              device, data.pad_token_id),
        "merge_max_logit_diff": float((before - after).abs().max()),
    }


def failure_record(spec: TrialSpec, status: str, error: str) -> dict[str, Any]:
    return {"record_version": RECORD_VERSION, "trial_id": spec.trial_id, "study": spec.study,
            "method": spec.method.name, "family": spec.method.family, "seed": spec.seed,
            "train_size": spec.train.train_size, "status": status, "error": error}


def format_exception(exc: BaseException) -> str:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc}\n" + "".join(tb[-6:])


def default_threads() -> int:
    """Threads a trial may use by default: every core this process may run on."""
    return available_cores()
