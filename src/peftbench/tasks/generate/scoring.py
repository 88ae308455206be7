"""Scoring a generate trial: validation first (it decides the collapse mark), then the test split once, with
the gain over the zero-shot floor and the generalization figures. `score(rows, nll=True)` generates greedily
and scores (tasks/generate/evaluate.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import numpy as np

from peftbench.stats.predictions import encode
from peftbench.tasks.classify.evaluate import detect_collapse, majority_rate
from peftbench.tasks.generate.data import PreparedGeneration
from peftbench.tasks.generate.evaluate import normalize_answer

Score = Callable[..., dict[str, Any]]
# Per-split figures kept in the record (the per-row arrays are encoded separately). Exact match is the
# task's headline: it is stored once, under its own name.
_FIGURES = ("exact_match", "f1", "precision", "recall", "balanced_accuracy", "other_rate", "response_nll",
            "mean_generated_tokens")


def score_validation(score: Score, data: PreparedGeneration, record: dict[str, Any]) -> float:
    """Validation: the collapse mark (and every later choice) reads this, never the test split. Its choices
    are made on exact match, so the response NLL (a reported figure) is scored on test only."""
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
    record["val_gain_over_zero_shot"] = val["exact_match"] - record["zero_shot_val_exact_match"]
    return val["exact_match"]


def score_test(score: Score, data: PreparedGeneration, test_set, record: dict[str, Any]) -> None:
    """The test split: read once, here, for the reported figures only."""
    test = score(test_set)
    record.update(_figures(test, ""), eval_loss=test["response_nll"], test_size=len(test_set),
                  test_predictions=encode(test["predictions"]), test_labels=encode(test["labels"]),
                  generations=test["generations"], references=test["references"])
    record["test_majority_rate"] = (majority_rate(test_set.labels) if test_set.verbalised
                                    else most_common_share(test_set.references))
    # what training bought over the untrained model, on the same rows (intervals: paired over those rows)
    record["gain_over_zero_shot"] = test["exact_match"] - record["zero_shot_exact_match"]
    record.update(_generalization(score, data, test["correct"]))


def most_common_share(references: list[str]) -> float:
    """Exact match of the best constant answer: the share of the most common normalised reference."""
    if not references:
        return float("nan")
    counts = Counter(normalize_answer(r) for r in references)
    return max(counts.values()) / len(references)


def _figures(scored: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}{k}": scored[k] for k in _FIGURES if k in scored}


def _generalization(score: Score, data: PreparedGeneration, test_correct: np.ndarray) -> dict[str, Any]:
    """Out-of-domain exact match, and the exact-match drop (as a fraction) under each perturbation of the
    first test rows (perturbed minus clean on the same rows: negative = worse)."""
    out: dict[str, Any] = {"perturbations_skipped": dict(data.perturbations_skipped or {})}
    if data.ood is not None:
        ood = score(data.ood, nll=False)
        out.update(ood_exact_match=ood["exact_match"], ood_balanced_accuracy=ood.get("balanced_accuracy"),
                   ood_f1=ood.get("f1"), ood_predictions=encode(ood["predictions"]),
                   ood_labels=encode(ood["labels"]))
    else:
        out.update(ood_exact_match=None, ood_balanced_accuracy=None, ood_f1=None)
    if data.perturbed:
        n = len(next(iter(data.perturbed.values())))
        clean = float(test_correct[:n].mean())
        out.update(perturbation_rows=n, clean_subset_exact_match=clean)
        drops = []
        for kind, pset in data.perturbed.items():
            scored = score(pset, nll=False)
            out[f"perturbed_{kind}_exact_match"] = scored["exact_match"]
            out[f"perturbed_{kind}_predictions"] = encode(scored["predictions"])
            out[f"robustness_drop_{kind}"] = scored["exact_match"] - clean
            drops.append(scored["exact_match"] - clean)
        out["robustness_drop"] = float(np.mean(drops)) if drops else None
    return out
