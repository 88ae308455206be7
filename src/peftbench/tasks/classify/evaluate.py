"""Task metrics on a tokenized set (accuracy, macro F1/precision/recall, balanced accuracy, loss), and the
collapse check that keeps a one-class predictor from passing for a result."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, precision_recall_fscore_support

from peftbench.data.prepared import TokenizedSet, eval_batches

# A trial is collapsed when this share of its validation predictions is one class...
COLLAPSE_ONE_CLASS_SHARE = 0.95
# ...or when its macro-F1 is within this of the best constant predictor's.
COLLAPSE_F1_MARGIN = 0.02


@torch.inference_mode()
def predict(model, data: TokenizedSet, device: torch.device, pad_id: int, batch_size: int = 64,
            bf16: bool = False) -> tuple[np.ndarray, float]:
    """Predicted labels (in data order) and mean cross-entropy."""
    model.eval()
    preds = np.empty(len(data), dtype=np.int64)
    loss_sum = 0.0
    for idx, batch in eval_batches(data, batch_size, pad_id):
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
            out = model(**batch)
        loss_sum += float(out.loss) * len(idx)
        preds[idx] = out.logits.argmax(-1).cpu().numpy()
    return preds, loss_sum / max(len(data), 1)


def metrics(labels: np.ndarray, preds: np.ndarray, loss: float | None = None) -> dict[str, float]:
    p, r, f, _ = precision_recall_fscore_support(labels, preds, average="macro", zero_division=0)
    out = {"accuracy": float(accuracy_score(labels, preds)), "f1": float(f), "precision": float(p),
           "recall": float(r), "balanced_accuracy": float(balanced_accuracy_score(labels, preds))}
    if loss is not None:
        out["loss"] = float(loss)
    return out


def majority_rate(labels: np.ndarray) -> float:
    """Accuracy of the best constant predictor: the share of the most common label."""
    return float(np.bincount(labels).max() / len(labels)) if len(labels) else float("nan")


def constant_predictor_f1(labels: np.ndarray) -> float:
    """The best macro-F1 any constant prediction reaches on these labels."""
    return max(metrics(labels, np.full_like(labels, c))["f1"] for c in np.unique(labels))


def detect_collapse(labels: np.ndarray, preds: np.ndarray,
                    class_names: list[str] | None = None) -> tuple[bool, str | None]:
    """(collapsed, reason): ≥ 95% of predictions one class, or macro-F1 within 0.02 of a constant
    predictor's. Read on validation, so that the mark is itself never a look at the test split.
    `class_names`: how the reason names a predicted class (default: its index)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    if len(preds) == 0:
        return False, None
    counts = np.bincount(preds)
    share = counts.max() / len(preds)
    if share >= COLLAPSE_ONE_CLASS_SHARE:
        top = int(counts.argmax())
        name = repr(class_names[top]) if class_names and top < len(class_names) else f"class {top}"
        return True, f"{share:.0%} of validation predictions are {name}"
    f1, floor = metrics(labels, preds)["f1"], constant_predictor_f1(labels)
    if f1 <= floor + COLLAPSE_F1_MARGIN:
        return True, f"validation macro-F1 {f1:.3f} is within {COLLAPSE_F1_MARGIN} of a constant predictor's {floor:.3f}"
    return False, None


def evaluate(model, data: TokenizedSet, device: torch.device, pad_id: int, bf16: bool = False) -> dict:
    preds, loss = predict(model, data, device, pad_id, bf16=bf16)
    return metrics(data.labels, preds, loss)
