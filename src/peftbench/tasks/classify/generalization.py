"""A classifier's generalization figures: out-of-domain accuracy, and the accuracy drop under each
perturbation of the first test rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from peftbench.data.prepared import PreparedData
from peftbench.stats.predictions import encode
from peftbench.tasks.classify import evaluate as ev


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


