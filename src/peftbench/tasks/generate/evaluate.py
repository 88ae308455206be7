"""Scoring a causal LM on a GenerationSet: greedy generation, normalised exact match, response NLL.

Exact match compares answers after SQuAD's normalisation (`normalize_answer`): lowercase, punctuation
removed, the articles a/an/the removed, whitespace collapsed. So " Positive." matches "positive", and a
model is not marked wrong for a full stop.

Per-row predictions, in the form the classify task stores them (predictions.encode):
- verbalised labels: the class whose normalised name equals the normalised generation, or `num_labels`
  ("other") when none does. Accuracy, balanced accuracy, predictions.encode and the collapse check read them
  as they read a classifier's. Macro-F1 averages the task's classes only: an "other" row is a miss of its
  true class (see label_metrics).
- free-form responses: 1 where the generation matches the reference, else 0, against labels of all 1, so
  accuracy(labels, predictions) is exact match; a collapse check means nothing there.
"""

from __future__ import annotations

import re
import string
import warnings

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support

from peftbench.data.prepared import eval_batches
from peftbench.errors import PeftbenchError
from peftbench.tasks.generate.data import IGNORE, GenerationSet

SHOWN_GENERATIONS = 5  # texts kept for display: a record holds predictions, not every generation

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(generation: str, reference: str) -> bool:
    return normalize_answer(generation) == normalize_answer(reference)


def to_classes(texts: list[str], label_names: list[str]) -> np.ndarray:
    """Each text's class index by normalised name; len(label_names) ("other") when it names none."""
    index: dict[str, int] = {}
    for c, name in enumerate(label_names):
        key = normalize_answer(name)
        if not key or key in index:
            raise PeftbenchError(f"label names cannot be told apart after normalisation: {label_names!r}")
        index[key] = c
    other = len(label_names)
    return np.fromiter((index.get(normalize_answer(t), other) for t in texts), dtype=np.int64,
                       count=len(texts))


def label_metrics(labels: np.ndarray, preds: np.ndarray, num_labels: int) -> dict[str, float]:
    """Macro precision/recall/F1 over the task's classes and balanced accuracy, with "other" (= num_labels)
    counted as a miss of the true class, never as a class of its own: one stray generation must not cut
    macro-F1 by 1/(K+1). (intervals.make_macro_f1 sizes its confusion matrix from the classes it is given,
    so for this figure it needs a (K+1)-wide matrix averaged over classes 0..K-1.)"""
    p, r, f, _ = precision_recall_fscore_support(labels, preds, labels=list(range(num_labels)),
                                                 average="macro", zero_division=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true": the "other" class
        balanced = balanced_accuracy_score(labels, preds)
    return {"f1": float(f), "precision": float(p), "recall": float(r), "balanced_accuracy": float(balanced)}


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")


def cut_at_eos(ids: np.ndarray, eos_id: int) -> np.ndarray:
    stop = np.flatnonzero(ids == eos_id)
    return ids[: stop[0]] if len(stop) else ids


@torch.inference_mode()
def generate_ids(model, data: GenerationSet, device: torch.device, pad_id: int, eos_id: int,
                 max_new_tokens: int, batch_size: int = 16, bf16: bool = False,
                 min_new_tokens: int | None = None) -> list[np.ndarray]:
    """Greedy continuations of every prompt (data order), cut at the first eos (uncut with min_new_tokens:
    a fixed-length run).

    Batches hold prompts of similar length, so little left padding sits between a prompt-tuning model's
    virtual tokens and the prompt (peft ignores position ids there)."""
    model.eval()
    out: list[np.ndarray] = [np.empty(0, np.int64)] * len(data)
    order = np.argsort(data.prompt_lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in data.prompt_batch(idx, pad_id).items()}
        extra = {} if min_new_tokens is None else {"min_new_tokens": min_new_tokens}
        with _autocast(device, bf16), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # generation-config chatter (sampling flags greedy ignores)
            seqs = model.generate(**batch, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                  pad_token_id=pad_id, eos_token_id=eos_id, **extra)
        # generate returns prompt + continuation (peft's prompt learning too): keep the continuation
        new = seqs[:, batch["input_ids"].shape[1]:].cpu().numpy()
        for r, i in enumerate(idx):
            out[i] = cut_at_eos(new[r], eos_id) if min_new_tokens is None else new[r]
    return out


@torch.inference_mode()
def response_nll(model, data: GenerationSet, device: torch.device, pad_id: int, batch_size: int = 16,
                 bf16: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Teacher-forced negative log-likelihood of each reference response (its eos included).

    Returns per-row (sum of NLL over response tokens, number of response tokens). Logits are taken from the
    end, so a prompt-tuning model's virtual tokens in front are skipped; where the model takes
    `logits_to_keep`, only the positions that predict a response token are projected onto the vocabulary
    (the LM head over every prompt position would cost a fifth of the pass, for logits nobody reads)."""
    model.eval()
    sums, counts = np.zeros(len(data)), np.zeros(len(data), dtype=np.int64)
    keep_some = takes_logits_to_keep(model)
    for idx, batch in eval_batches(data, batch_size, pad_id):
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        width = labels.shape[1]
        # the last `keep` positions: from the one before the batch's earliest response token to the end
        response = labels != IGNORE
        first = int(response.int().argmax(1).min()) if bool(response.any()) else width - 1
        keep = width - max(first - 1, 0)
        extra = {"logits_to_keep": keep} if keep_some else {}
        with _autocast(device, bf16):
            logits = model(**batch, **extra).logits
        logits = logits[:, -keep:-1]
        target = labels[:, width - keep + 1:]
        scored = target != IGNORE
        nll = torch.nn.functional.cross_entropy(logits[scored].float(), target[scored], reduction="none")
        row = scored.nonzero()[:, 0]
        sums[idx] = torch.zeros(len(idx), device=nll.device).index_add_(0, row, nll).cpu().numpy()
        counts[idx] = scored.sum(1).cpu().numpy()
    return sums, counts


def takes_logits_to_keep(model) -> bool:
    """Whether the (peft-wrapped) causal LM's forward takes transformers' `logits_to_keep`."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


def evaluate_generation(model, data: GenerationSet, tokenizer, device: torch.device, pad_id: int,
                        max_new_tokens: int, batch_size: int = 16, bf16: bool = False,
                        with_nll: bool = True) -> dict:
    """Generate greedily and score. Returns figures plus per-row arrays:

    exact_match, accuracy (the same number), response_nll (mean per response token; None if not with_nll),
    predictions / labels (int64 arrays, see the module doc), correct (bool array), response_nll_sum and
    response_tokens (per-row arrays), generations / references (the first few texts, for display),
    and for verbalised labels also f1, precision, recall, balanced_accuracy and other_rate."""
    ids = generate_ids(model, data, device, pad_id, tokenizer.eos_token_id, max_new_tokens, batch_size, bf16)
    texts = tokenizer.batch_decode([x.tolist() for x in ids], skip_special_tokens=True)
    correct = np.fromiter((exact_match(t, r) for t, r in zip(texts, data.references, strict=True)),
                          dtype=bool, count=len(data))
    em = float(correct.mean()) if len(data) else float("nan")
    out: dict = {"exact_match": em, "accuracy": em, "correct": correct,
                 "generations": texts[:SHOWN_GENERATIONS], "references": data.references[:SHOWN_GENERATIONS],
                 "mean_generated_tokens": float(np.mean([len(x) for x in ids])) if len(ids) else 0.0}
    if data.verbalised:
        preds = to_classes(texts, data.label_names)
        out.update(predictions=preds, labels=data.labels.copy(),
                   other_rate=float((preds == len(data.label_names)).mean()))
        out.update(label_metrics(data.labels, preds, len(data.label_names)))
    else:
        out.update(predictions=correct.astype(np.int64), labels=np.ones(len(data), dtype=np.int64))
    out["response_nll"] = None
    if with_nll:
        sums, counts = response_nll(model, data, device, pad_id, batch_size, bf16)
        out.update(response_nll=float(sums.sum() / max(counts.sum(), 1)), response_nll_sum=sums,
                   response_tokens=counts)
    return out
