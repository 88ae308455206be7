"""Task metrics on a tokenized set: accuracy, macro F1/precision/recall, mean loss."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from .data.prepared import TokenizedSet, eval_batches


@torch.inference_mode()
def predict(model, data: TokenizedSet, device: torch.device, pad_id: int, batch_size: int = 32,
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


def metrics(labels: np.ndarray, preds: np.ndarray, loss: float) -> dict[str, float]:
    p, r, f, _ = precision_recall_fscore_support(labels, preds, average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(labels, preds)), "f1": float(f), "precision": float(p),
            "recall": float(r), "loss": float(loss)}


def evaluate(model, data: TokenizedSet, device: torch.device, pad_id: int, bf16: bool = False) -> dict:
    preds, loss = predict(model, data, device, pad_id, bf16=bf16)
    return metrics(data.labels, preds, loss)
