"""One `--task generate` trial: a causal LM learns to write the response; measured on the six dimensions
plus what decoders need (zero-shot floor, exact match, response log-likelihood, forgetting, time to first
token, decode tokens/s, merged vs unmerged greedy outputs).

The shape follows trial.py: validation is scored first and decides everything (the collapse mark); the
test split is read once, for the reported figures.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
import torch

from peftbench.config.spec import TrialSpec
from peftbench.errors import PeftbenchError
from peftbench.measure import memory, params
from peftbench.measure.forgetting import general_text_sample, next_token_ce
from peftbench.methods import BuildContext, build_model
from peftbench.models.loading import load_causal_lm, load_tokenizer
from peftbench.stats.predictions import encode
from peftbench.tasks.classify.evaluate import detect_collapse, majority_rate
from peftbench.tasks.generate.data import GenerationSet, PreparedGeneration
from peftbench.tasks.generate.evaluate import evaluate_generation, generate_ids, normalize_answer
from peftbench.tasks.generate.speed import compare_greedy, generation_speed
from peftbench.tasks.generate.zero_shot import zero_shot_floor
from peftbench.trial.run import Progress, begin_trial, finish_inference, load_base, train_and_measure
from peftbench.trial.train import total_steps

MERGE_PROBE_ROWS = 32  # test prompts whose greedy outputs must not change when the adapter is merged
DECODE_TOKENS = 16  # new tokens per timed decode call (eos ignored), at batch 1 and batch 16
DECODE_REPEATS = 2  # timed decode calls per batch size (their median), after one warm-up call


def run_generation_trial(spec: TrialSpec, data: PreparedGeneration, progress: Progress | None = None,
                         spawned_at: float | None = None) -> dict[str, Any]:
    """Train and measure a causal LM on prompt/response data. Raises on failure (the executor stores it)."""
    if spec.tune is not None:
        raise PeftbenchError("--tune is not available for --task generate yet; set :lr= per method")
    entered, device, say, record = begin_trial(spec, data, progress)
    record["num_labels"] = data.num_labels  # 0 for free-form responses
    tok = load_tokenizer(spec.model)
    bf16 = spec.train.bf16
    train_set = data.train_pool.take(spec.train.train_size)

    base = load_base(load_causal_lm, spec, device)
    # Measured on the untouched base, before any method changes it: the floor, and forgetting's "before".
    say({"phase": "zero-shot"})
    sample = general_text_sample(tok)
    record.update(zero_shot_floor(base, data, spec, tok, device, sample, bf16))
    record["forgetting_sample"] = sample.provenance

    base_params, heads = params.base_parameter_count(base)
    record["head_modules"] = heads
    steps = total_steps(len(train_set), spec.train)
    model = build_model(base, spec.method, BuildContext(total_steps=steps, num_labels=data.num_labels,
                                                        task_type="CAUSAL_LM"))
    train_and_measure(record, model, base_params, heads, train_set, spec, data, device, steps, say, None,
                      entered, spawned_at)
    model.config.use_cache = True  # gradient checkpointing turned the KV cache off for training

    say({"phase": "evaluate"})
    t_eval = time.perf_counter()
    score = lambda rows, nll=True: evaluate_generation(model, rows, tok, device, data.pad_token_id,  # noqa: E731
                                                       data.max_new_tokens, bf16=bf16, with_nll=nll)
    # Validation: the collapse mark (and every later choice) reads this, never the test split. Its choices
    # are made on exact match, so the response NLL (a reported figure) is scored on test only.
    val = score(data.validation, nll=False)
    record.update(_figures(val, "val_"))
    record.update(val_predictions=encode(val["predictions"]), val_labels=encode(val["labels"]))
    if data.validation.verbalised:
        record["val_majority_rate"] = majority_rate(data.validation.labels)
        names = [*data.label_names, "no label (an answer naming no class)"]
        record["collapsed"], record["collapse_reason"] = detect_collapse(data.validation.labels,
                                                                         val["predictions"], names)
    else:  # free-form responses: a constant answer scores the share of the most common reference
        record["val_majority_rate"] = most_common_share(data.validation.references)
        record["collapsed"], record["collapse_reason"] = False, None
    # The test split: read once, here, for the reported figures only.
    test_set = data.test.take(spec.eval_size) if spec.eval_size else data.test
    test = score(test_set)
    record.update(_figures(test, ""), eval_loss=test["response_nll"], test_size=len(test_set),
                  test_predictions=encode(test["predictions"]), test_labels=encode(test["labels"]),
                  generations=test["generations"], references=test["references"])
    record["test_majority_rate"] = (majority_rate(test_set.labels) if test_set.verbalised
                                    else most_common_share(test_set.references))
    # what training bought over the untrained model, on the same rows (intervals: paired over those rows)
    record["val_gain_over_zero_shot"] = val["exact_match"] - record["zero_shot_val_exact_match"]
    record["gain_over_zero_shot"] = test["exact_match"] - record["zero_shot_exact_match"]
    record.update(_generalization(score, data, test["correct"]))
    record["general_ce_after"] = next_token_ce(model, sample, device)
    record["forgetting"] = record["general_ce_after"] - record["general_ce_before"]
    record["eval_seconds"] = time.perf_counter() - t_eval

    say({"phase": "inference"})
    t_inf = time.perf_counter()
    memory.release_and_reset_peak()
    speed = generation_speed(model, data.test, device, data.pad_token_id, runs=spec.train.latency_runs,
                             new_tokens=DECODE_TOKENS, repeats=DECODE_REPEATS)
    record.update(speed, **_as_latency(speed))
    return finish_inference(record, model, spec, data, device, _merged, t_inf, entered)


# Per-split figures kept in the record (the per-row arrays are encoded separately).
_FIGURES = ("exact_match", "accuracy", "f1", "precision", "recall", "balanced_accuracy", "other_rate",
            "response_nll", "mean_generated_tokens")


def most_common_share(references: list[str]) -> float:
    """Exact match of the best constant answer: the share of the most common normalised reference."""
    if not references:
        return float("nan")
    counts = Counter(normalize_answer(r) for r in references)
    return max(counts.values()) / len(references)


def _figures(scored: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}{k}": scored[k] for k in _FIGURES if k in scored}


def _generalization(score, data: PreparedGeneration, test_correct: np.ndarray) -> dict[str, Any]:
    """Out-of-domain exact match, and the exact-match drop in points-as-fractions under each perturbation of
    the first test rows (perturbed minus clean on the same rows: negative = worse)."""
    out: dict[str, Any] = {"perturbations_skipped": dict(data.perturbations_skipped or {})}
    if data.ood is not None:
        ood = score(data.ood, nll=False)
        out.update(ood_exact_match=ood["exact_match"], ood_accuracy=ood["accuracy"],
                   ood_balanced_accuracy=ood.get("balanced_accuracy"), ood_f1=ood.get("f1"),
                   ood_predictions=encode(ood["predictions"]), ood_labels=encode(ood["labels"]))
    else:
        out.update(ood_accuracy=None, ood_balanced_accuracy=None, ood_f1=None)
    if data.perturbed:
        n = len(next(iter(data.perturbed.values())))
        clean = float(test_correct[:n].mean())
        out.update(perturbation_rows=n, clean_subset_accuracy=clean)
        drops = []
        for kind, pset in data.perturbed.items():
            scored = score(pset, nll=False)
            out[f"perturbed_{kind}_accuracy"] = scored["accuracy"]
            out[f"perturbed_{kind}_predictions"] = encode(scored["predictions"])
            out[f"robustness_drop_{kind}"] = scored["accuracy"] - clean
            drops.append(scored["accuracy"] - clean)
        out["robustness_drop"] = float(np.mean(drops)) if drops else None
    return out


def _as_latency(speed: dict[str, float], prefix: str = "") -> dict[str, float]:
    """The columns every table and the recommender read: for a decoder, latency is the time to first token
    at batch 1 and throughput the decoded tokens/s at batch N (the record keeps both under their own names)."""
    return {f"{prefix}latency_p50_ms": speed["ttft_p50_ms"], f"{prefix}latency_p95_ms": speed["ttft_p95_ms"],
            f"{prefix}latency_p25_ms": speed["ttft_p25_ms"], f"{prefix}latency_p75_ms": speed["ttft_p75_ms"],
            f"{prefix}throughput_per_s": speed["decode_tokens_per_s_batched"]}


def _merged(model, data: PreparedGeneration, spec: TrialSpec, device: torch.device) -> dict[str, Any]:
    """Merge the adapter into the base weights; its greedy outputs must be the unmerged model's, token for
    token, and its generation speed is measured again."""
    probe: GenerationSet = data.test.take(min(MERGE_PROBE_ROWS, len(data.test)))
    args = (device, data.pad_token_id, data.eos_token_id, data.max_new_tokens)
    before = generate_ids(model, probe, *args)
    merged = model.merge_and_unload()
    after = generate_ids(merged, probe, *args)
    same = compare_greedy(before, after)
    speed = generation_speed(merged, data.test, device, data.pad_token_id, runs=spec.train.latency_runs,
                             new_tokens=DECODE_TOKENS, repeats=DECODE_REPEATS)
    return {"merge_same_greedy": same["identical"], "merge_rows_differing": same["rows_differing"],
            "merge_probe_rows": same["rows"], **{f"merged_{k}": v for k, v in speed.items()},
            **_as_latency(speed, "merged_")}
