"""A seeded, stratified train/validation/test split, with nested training subsets.

Training subsets are prefixes of one stratified ordering of the training pool, so the 100 examples of
a small run are inside the 250 of the next: data-efficiency curves compare like with like.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import PeftbenchError
from .sources import LabelledText


@dataclass
class Split:
    train_pool: np.ndarray  # indices, in nested stratified order
    validation: np.ndarray
    test: np.ndarray


def stratified_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An ordering whose every prefix holds each class in about its overall proportion."""
    keys = np.empty(len(labels))
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        keys[idx] = (np.arange(len(idx)) + rng.random(len(idx))) / len(idx)
    return np.argsort(keys, kind="stable")


def make_split(data: LabelledText, seed: int, validation_size: int, test_size: int) -> Split:
    """Hold out up to `test_size` / `validation_size` examples, but never more than 20% / 10% of a small
    dataset (the sizes used are recorded in provenance)."""
    n = len(data)
    test_size = min(test_size, max(1, int(0.2 * n)))
    validation_size = min(validation_size, max(1, int(0.1 * n)))
    held_out = validation_size + test_size
    if n - held_out < 10:
        raise PeftbenchError(f"the dataset has only {n} labelled examples; peftbench needs at least ~20")
    rng = np.random.default_rng(seed)
    order = stratified_order(data.labels, rng)
    test = order[:test_size]
    validation = order[test_size:held_out]
    pool = order[held_out:]
    pool = pool[stratified_order(data.labels[pool], rng)]
    return Split(pool, validation, test)


def content_hash(data: LabelledText, split: Split) -> str:
    """Hash of texts and labels in each split: two runs with equal hashes trained on equal data."""
    h = hashlib.sha256()
    for name, idx in (("train", split.train_pool), ("validation", split.validation), ("test", split.test)):
        h.update(name.encode())
        for i in idx:
            h.update(data.texts[i].encode("utf-8", "replace"))
            h.update(b"\x1f%d\x1e" % data.labels[i])
    return h.hexdigest()[:16]
