"""Tokenize once per study; every trial reuses the result. Batches are padded only to their own longest row.

`PreparedData` is plain numpy (picklable, cheap to send to a fresh trial process or a Ray worker).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from ..config import DataSpec
from ..errors import PeftbenchError
from ..models import load_tokenizer
from .perturb import PERTURBATIONS
from .sources import LabelledText, load_source
from .split import content_hash, make_split


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


def _tokenize(tokenizer, texts: list[str], max_length: int) -> list[np.ndarray]:
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=False)
    return [np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]]


def _subset(tokenizer, data: LabelledText, idx: np.ndarray, max_length: int) -> TokenizedSet:
    return TokenizedSet(_tokenize(tokenizer, [data.texts[i] for i in idx], max_length), data.labels[idx])


def prepare_data(spec: DataSpec, model: str, max_train_size: int) -> PreparedData:
    """Load, split, perturb and tokenize the study's data once."""
    spec.validate()
    data = load_source(spec.source, spec.text_column, spec.label_column)
    split = make_split(data, spec.split_seed, spec.validation_size, spec.test_size)
    if max_train_size > len(split.train_pool):
        raise PeftbenchError(f"train size {max_train_size} is larger than the training pool "
                             f"({len(split.train_pool)} examples after holding out validation and test)")
    tok = load_tokenizer(model)
    pool = split.train_pool[:max_train_size]
    test_texts = [data.texts[i] for i in split.test]
    n_pert = min(spec.perturbation_size, len(split.test))
    perturbed = {
        kind: TokenizedSet(
            _tokenize(tok, [fn(t, spec.perturbation_rate, spec.split_seed) for t in test_texts[:n_pert]],
                      spec.max_length),
            data.labels[split.test[:n_pert]])
        for kind, fn in PERTURBATIONS.items()
    }
    ood = None
    ood_origin = None
    if spec.ood_source is not None:
        ood_data = load_source(spec.ood_source, spec.ood_text_column, spec.ood_label_column, ood=True)
        if ood_data.num_labels != data.num_labels:
            raise PeftbenchError(f"out-of-domain data has {ood_data.num_labels} classes, the task has "
                                 f"{data.num_labels}")
        rng = np.random.default_rng(spec.split_seed)
        from .split import stratified_order

        idx = stratified_order(ood_data.labels, rng)[: spec.ood_size]
        ood = _subset(tok, ood_data, idx, spec.max_length)
        ood_origin = ood_data.origin
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    provenance = {
        "dataset": data.origin, "dataset_rows": len(data), "label_names": data.label_names,
        "split_seed": spec.split_seed, "split_sizes": {"train_pool": len(split.train_pool),
                                                       "validation": len(split.validation),
                                                       "test": len(split.test)},
        "split_hash": content_hash(data, split), "ood_dataset": ood_origin,
        "ood_size": len(ood) if ood is not None else 0, "perturbation_rate": spec.perturbation_rate,
        "perturbation_size": n_pert,
    }
    return PreparedData(
        train_pool=_subset(tok, data, pool, spec.max_length),
        validation=_subset(tok, data, split.validation, spec.max_length),
        test=_subset(tok, data, split.test, spec.max_length),
        ood=ood, perturbed=perturbed, num_labels=data.num_labels, label_names=data.label_names,
        pad_token_id=int(pad), provenance=provenance,
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


def train_batches(data: TokenizedSet, batch_size: int, generator: np.random.Generator,
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
        idx = batches[b]
        yield collate([data.input_ids[i] for i in idx], data.labels[idx], pad_id)


def num_train_batches(n: int, batch_size: int, bucket_batches: int = 50) -> int:
    chunk = batch_size * bucket_batches
    full, rest = divmod(n, chunk)
    return full * bucket_batches + -(-rest // batch_size)


def eval_batches(data: TokenizedSet, batch_size: int, pad_id: int) -> Iterator[tuple[np.ndarray, dict]]:
    """Length-sorted batches; yields the original row indices so predictions can be put back in order."""
    order = np.argsort(data.lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        yield idx, collate([data.input_ids[j] for j in idx], data.labels[idx], pad_id)
