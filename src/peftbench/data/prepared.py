"""Tokenize once per study; every trial reuses the result. Batches are padded only to their own longest row.

`PreparedData` is plain numpy (picklable, cheap to send to a fresh trial process or a Ray worker).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

import numpy as np
import torch

from peftbench.config.spec import DataSpec
from peftbench.data.perturb import PERTURBATIONS
from peftbench.data.sources import LabelledText, load_source, match_ood_labels, unlabelled_note
from peftbench.data.split import Split, content_hash, split_data, stratified_order
from peftbench.data.truncation import cut_counts, truncation_note
from peftbench.errors import PeftbenchError
from peftbench.models.loading import load_tokenizer


class BatchSource(Protocol):
    """What the training loop and evaluation read: a TokenizedSet or a generation.GenerationSet."""

    def __len__(self) -> int: ...

    @property
    def lengths(self) -> np.ndarray: ...

    def batch(self, idx: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]: ...


@dataclass
class TokenizedSet:
    input_ids: list[np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, n: int) -> TokenizedSet:
        return TokenizedSet(self.input_ids[:n], self.labels[:n])

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def batch(self, idx: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        """Rows `idx` as one right-padded batch: the set builds its own batches, so the training loop and
        evaluation run unchanged on a classification set and a generation set (data/generation.py)."""
        return collate([self.input_ids[i] for i in idx], self.labels[idx], pad_id)


@dataclass
class PreparedData:
    train_pool: TokenizedSet
    validation: TokenizedSet
    test: TokenizedSet
    ood: TokenizedSet | None
    perturbed: dict[str, TokenizedSet]  # kind -> perturbed copy of the first `perturbation_size` test rows
    num_labels: int
    label_names: list[str]
    pad_token_id: int
    provenance: dict[str, Any] = field(default_factory=dict)
    perturbations_skipped: dict[str, str] = field(default_factory=dict)  # kind -> why it is not evaluated
    notes: list[str] = field(default_factory=list)  # one line each, printed once when the study starts


def tokenize_counted(tokenizer, texts: list[str], max_length: int) -> tuple[list[np.ndarray], dict[str, int]]:
    """Token ids cut at `max_length`, and what the cut cost (rows, rows_cut, tokens_lost).

    Each text is tokenized whole first, since the count needs its whole length; only the rows over the
    limit are tokenized again with truncation, so every row's ids are the ones truncation=True gives."""
    if not texts:
        return [], cut_counts([], [])
    whole = tokenizer(texts, truncation=False, padding=False, verbose=False)["input_ids"]
    ids = [np.asarray(x, dtype=np.int64) for x in whole]
    long = [i for i, x in enumerate(ids) if len(x) > max_length]
    if long:
        cut = tokenizer([texts[i] for i in long], truncation=True, max_length=max_length, padding=False)
        for i, x in zip(long, cut["input_ids"], strict=True):
            ids[i] = np.asarray(x, dtype=np.int64)
    return ids, cut_counts([len(x) for x in whole], [len(x) for x in ids])


def _tokenize(tokenizer, texts: list[str], max_length: int) -> list[np.ndarray]:
    """Token ids cut at `max_length`, uncounted (the perturbed copies of test rows)."""
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=False)
    return [np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]]


def _subset(tokenizer, data: LabelledText, idx: np.ndarray,
            max_length: int) -> tuple[TokenizedSet, dict[str, int]]:
    """Rows `idx` tokenized, and what truncation cut of them."""
    ids, counts = tokenize_counted(tokenizer, [data.texts[i] for i in idx], max_length)
    return TokenizedSet(ids, data.labels[idx]), counts


def _uncased(tok) -> bool:
    upper, lower = (tok(t, add_special_tokens=False)["input_ids"] for t in ("Aa Bb", "aa bb"))
    return upper == lower


def perturb_test(tok, spec: DataSpec, clean: TokenizedSet, texts: list[str]
                 ) -> tuple[dict[str, TokenizedSet], dict[str, str]]:
    """Each perturbation of the first test rows, tokenized; a kind that leaves every row's token ids as they
    were (case changes under an uncased tokenizer) measures nothing, so it is skipped with its reason."""
    perturbed: dict[str, TokenizedSet] = {}
    skipped: dict[str, str] = {}
    for kind, fn in PERTURBATIONS.items():
        ids = _tokenize(tok, [fn(t, spec.perturbation_rate, spec.split_seed) for t in texts], spec.max_length)
        if all(np.array_equal(a, b) for a, b in zip(ids, clean.input_ids, strict=True)):
            why = " (uncased tokenizer)" if kind == "case" and _uncased(tok) else ""
            skipped[kind] = f"leaves the token ids unchanged{why}"
        else:
            perturbed[kind] = TokenizedSet(ids, clean.labels)
    return perturbed, skipped


def _load_ood(spec: DataSpec, task: LabelledText,
              tok) -> tuple[TokenizedSet | None, dict[str, Any], list[str], dict[str, int] | None]:
    """The OOD set, its provenance, its notes and what truncation cut of it."""
    if spec.ood_source is None:
        return None, {"ood_dataset": None, "ood_size": 0}, [], None
    raw = load_source(spec.ood_source, spec.ood_text_column, spec.ood_label_column, ood=True,
                      unlabelled_value=spec.unlabelled_value)
    ood_data, used = match_ood_labels(raw, task.label_names, spec.ood_label_map, spec.ood_same_codes)
    idx = stratified_order(ood_data.labels, np.random.default_rng(spec.split_seed))[: spec.ood_size]
    ood, cut = _subset(tok, ood_data, idx, spec.max_length)
    notes = [n for n in [unlabelled_note(raw, spec.unlabelled_value, "out-of-domain data: ")] if n]
    if ood_data.dropped.get("by_label_map"):
        gone = ", ".join(n for n, t in used.items() if not t)
        notes.append(f"out-of-domain data: dropped {ood_data.dropped['by_label_map']} rows labelled {gone} "
                     f"(--ood-label-map)")
    counts = np.bincount(ood.labels, minlength=task.num_labels)
    return ood, {"ood_dataset": raw.origin, "ood_size": len(ood), "ood_label_map": used,
                 "ood_same_codes": spec.ood_same_codes, "ood_rows_dropped": ood_data.dropped,
                 "ood_class_counts": dict(zip(task.label_names, map(int, counts), strict=True))}, notes, cut


def _split_notes(data: LabelledText, split: Split, unlabelled_value: str | None) -> list[str]:
    notes = [n for n in [unlabelled_note(data, unlabelled_value)] if n]
    if data.dropped.get("missing_text"):
        notes.append(f"dropped {data.dropped['missing_text']} rows with no text")
    if split.origin.get("mode") == "official":
        notes.append(f"official splits kept: test = {split.origin['test']}; validation = "
                     f"{split.origin['validation']} (--resplit pools them)")
    if split.duplicates.get("duplicate_rows_dropped"):
        notes.append(f"dropped {split.duplicates['duplicate_rows_dropped']} rows whose exact text is also in "
                     f"a held-out split")
    if split.duplicates.get("conflicting_label_texts"):
        notes.append(f"{split.duplicates['conflicting_label_texts']} texts carry conflicting labels: "
                     f"kept for training only")
    return notes


def prepare_data(spec: DataSpec, model: str, max_train_size: int) -> PreparedData:
    """Load, split, perturb and tokenize the study's data once."""
    spec.validate()
    data = load_source(spec.source, spec.text_column, spec.label_column,
                       unlabelled_value=spec.unlabelled_value)
    split = split_data(data, spec.split_seed, spec.validation_size, spec.test_size, spec.resplit)
    if max_train_size > len(split.train_pool):
        raise PeftbenchError(f"train size {max_train_size} is larger than the training pool "
                             f"({len(split.train_pool)} examples after holding out validation and test)")
    tok = load_tokenizer(model)
    pool = split.train_pool[:max_train_size]
    train_pool, cut_train = _subset(tok, data, pool, spec.max_length)
    validation, cut_validation = _subset(tok, data, split.validation, spec.max_length)
    test, cut_test = _subset(tok, data, split.test, spec.max_length)
    n_pert = min(spec.perturbation_size, len(split.test))
    perturbed, skipped = perturb_test(tok, spec, test.take(n_pert),
                                      [data.texts[i] for i in split.test[:n_pert]])
    ood, ood_provenance, ood_notes, cut_ood = _load_ood(spec, data, tok)
    truncation = {"train_pool": cut_train, "validation": cut_validation, "test": cut_test,
                  **({"ood": cut_ood} if cut_ood is not None else {})}
    notes = _split_notes(data, split, spec.unlabelled_value) + ood_notes
    notes += [n for n in [truncation_note(truncation, spec.max_length)] if n]
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    provenance = {
        "dataset": data.origin, "dataset_rows": len(data), "label_names": data.label_names,
        "unlabelled_dropped": data.dropped.get("unlabelled", 0), "unlabelled_value": spec.unlabelled_value,
        "unlabelled_dropped_by": dict(data.unlabelled_by),
        "unlabelled_splits_dropped": dict(data.unlabelled_splits),
        "missing_text_dropped": data.dropped.get("missing_text", 0),
        "official_splits": ({s: len(i) for s, i in data.splits.items()} if data.splits else None),
        "split_origin": split.origin,
        "split_seed": spec.split_seed, "split_sizes": {"train_pool": len(split.train_pool),
                                                       "validation": len(split.validation),
                                                       "test": len(split.test)},
        "split_hash": content_hash(data, split),
        "duplicate_texts_dropped": split.duplicates.get("duplicate_rows_dropped", 0),
        "duplicate_texts_grouped": split.duplicates.get("repeated_texts", 0),
        "conflicting_label_texts": split.duplicates.get("conflicting_label_texts", 0),
        **ood_provenance, "perturbation_rate": spec.perturbation_rate,
        "perturbation_size": n_pert, "perturbations_skipped": dict(skipped),
        "max_length": spec.max_length, "truncation": truncation,
    }
    return PreparedData(
        train_pool=train_pool, validation=validation, test=test, ood=ood, perturbed=perturbed,
        num_labels=data.num_labels, label_names=data.label_names,
        pad_token_id=int(pad), provenance=provenance, perturbations_skipped=skipped, notes=notes,
    )


def collate(ids: list[np.ndarray], labels: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest row of this batch only."""
    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for r, x in enumerate(ids):
        input_ids[r, : len(x)] = x
        mask[r, : len(x)] = 1
    return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask),
            "labels": torch.from_numpy(np.asarray(labels, dtype=np.int64))}


def train_batches(data: BatchSource, batch_size: int, generator: np.random.Generator,
                  pad_id: int, bucket_batches: int = 50) -> Iterator[dict[str, torch.Tensor]]:
    """Shuffled batches of similar length: shuffle, sort within chunks of 50 batches, shuffle batch order."""
    order = generator.permutation(len(data))
    lengths = data.lengths
    chunk = batch_size * bucket_batches
    batches: list[np.ndarray] = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    for b in generator.permutation(len(batches)):
        yield data.batch(batches[b], pad_id)


def num_train_batches(n: int, batch_size: int, bucket_batches: int = 50) -> int:
    chunk = batch_size * bucket_batches
    full, rest = divmod(n, chunk)
    return full * bucket_batches + -(-rest // batch_size)


def eval_batches(data: BatchSource, batch_size: int, pad_id: int) -> Iterator[tuple[np.ndarray, dict]]:
    """Length-sorted batches; yields the original row indices so predictions can be put back in order."""
    order = np.argsort(data.lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        yield idx, data.batch(idx, pad_id)
