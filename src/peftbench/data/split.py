"""Train/validation/test: a dataset's official splits when it has them, else a seeded stratified split.

Training subsets are prefixes of one stratified ordering of the training pool, so the 100 examples of
a small run are inside the 250 of the next: data-efficiency curves compare like with like.

Exact duplicate texts never sit on two sides: the seeded split moves whole groups of equal texts, and with
official splits a text already in test (or validation) is dropped from the splits that come before it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from peftbench.data.sources import LabelledText
from peftbench.errors import PeftbenchError

VALIDATION_NAMES = ("validation", "valid", "val", "dev")  # official split names read as "validation"


@dataclass
class Split:
    train_pool: np.ndarray  # indices, in nested stratified order
    validation: np.ndarray  # indices; every prefix stratified
    test: np.ndarray  # indices; every prefix stratified (perturbations and eval_size take prefixes)
    origin: dict[str, str] = field(default_factory=dict)  # part -> where its rows came from, in words
    duplicates: dict[str, int] = field(default_factory=dict)  # what was done with repeated texts


def stratified_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An ordering whose every prefix holds each class in about its overall proportion."""
    keys = np.empty(len(labels))
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        keys[idx] = (np.arange(len(idx)) + rng.random(len(idx))) / len(idx)
    return np.argsort(keys, kind="stable")


def _text_codes(texts: list[str]) -> np.ndarray:
    return pd.factorize(pd.Series(texts, dtype=object))[0]


def grouped_holdouts(data: LabelledText, rows: np.ndarray, sizes: list[int],
                     rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray, dict[str, int]]:
    """Hold out parts of the given sizes from `rows`: whole groups of equal texts, stratified by label.

    A text that carries two or more labels stays in the remainder (the training side): the data do not say
    which label is right, so it cannot be scored fairly, but training on what the data say is harmless.
    Returns the holdouts (each in stratified order), the remainder (unordered) and counts of repeated texts.
    """
    codes = _text_codes([data.texts[i] for i in rows]) if len(rows) else np.zeros(0, np.int64)
    labels = data.labels[rows]
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    size = np.bincount(codes, minlength=n_groups)
    low = np.full(n_groups, np.iinfo(np.int64).max)
    high = np.full(n_groups, np.iinfo(np.int64).min)
    np.minimum.at(low, codes, labels)
    np.maximum.at(high, codes, labels)
    conflicting = low != high
    clean = np.flatnonzero(~conflicting)
    order = clean[stratified_order(low[clean], rng)]
    part_of = np.full(n_groups, -1)
    filled = [0] * len(sizes)
    for g in order:
        for k, target in enumerate(sizes):
            if filled[k] + size[g] <= target:
                part_of[g] = k
                filled[k] += size[g]
                break
        if filled == list(sizes):
            break
    rank = np.empty(n_groups, dtype=np.int64)
    rank[order] = np.arange(len(order))
    row_part = part_of[codes]
    parts = []
    for k in range(len(sizes)):
        mine = np.flatnonzero(row_part == k)
        parts.append(rows[mine[np.argsort(rank[codes[mine]], kind="stable")]])
    rest = rows[row_part < 0]
    counts = {"repeated_texts": int((size > 1).sum()), "conflicting_label_texts": int(conflicting.sum())}
    return parts, rest, counts


def make_split(data: LabelledText, seed: int, validation_size: int, test_size: int) -> Split:
    """Hold out up to `test_size` / `validation_size` examples, but never more than 20% / 10% of a small
    dataset (the sizes used are recorded in provenance). Equal texts stay together on one side."""
    n = len(data)
    test_size = min(test_size, max(1, int(0.2 * n)))
    validation_size = min(validation_size, max(1, int(0.1 * n)))
    if n - validation_size - test_size < 10:
        raise PeftbenchError(f"the dataset has only {n} labelled examples; peftbench needs at least ~20")
    rng = np.random.default_rng(seed)
    (test, validation), pool, counts = grouped_holdouts(data, np.arange(n), [test_size, validation_size], rng)
    pool = pool[stratified_order(data.labels[pool], rng)]
    where = f"seeded stratified split (seed {seed}) of all {n} labelled rows"
    return Split(pool, validation, test, {"mode": "seeded", "train_pool": where, "validation": where,
                                          "test": where}, {**counts, "duplicate_rows_dropped": 0})


def _official_parts(splits: dict[str, np.ndarray]) -> tuple[np.ndarray, str | None, str | None, list[str]]:
    """Non-empty splits: train rows, the validation and test split names, the names pooled in train."""
    present = {name: idx for name, idx in splits.items() if len(idx)}
    test = "test" if "test" in present else None
    validation = next((v for v in VALIDATION_NAMES if v in present), None)
    train_names = [s for s in present if s not in (test, validation)]
    train = np.concatenate([present[s] for s in train_names]) if train_names else np.zeros(0, np.int64)
    return train, validation, test, train_names


def _drop_texts(data: LabelledText, rows: np.ndarray, taken: set[str]) -> tuple[np.ndarray, int]:
    keep = np.fromiter((data.texts[i] not in taken for i in rows), dtype=bool, count=len(rows))
    return rows[keep], int((~keep).sum())


def _sample(data: LabelledText, rows: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    return rows[stratified_order(data.labels[rows], rng)][:size]


def official_split(data: LabelledText, seed: int, validation_size: int, test_size: int) -> Split | None:
    """Keep a dataset's own validation/test splits (None: no labelled validation or test beside train).

    Test: the official test split, or the official validation split when the test split has no labels
    (GLUE). Validation: the official one, or carved from train (seeded, stratified, equal texts together).
    A split larger than the size asked for is cut to a seeded stratified sample of it. A text in test is
    dropped from validation and train, and a text in validation from train.
    """
    train, val_name, test_name, train_names = _official_parts(data.splits or {})
    if not len(train) or (val_name is None and test_name is None):
        return None
    rng = np.random.default_rng(seed)
    assert data.splits is not None
    train_words = " + ".join(f"official {s}" for s in train_names)
    if test_name is not None:
        test_src = test_name
        test_words = f"official {test_name} split"
    else:
        test_src, val_name = val_name, None
        unlabelled = " (its test split has no labels)" if "test" in data.splits else " (it has no test split)"
        test_words = f"official {test_src} split, used as test{unlabelled}"
    test = _sample(data, data.splits[test_src], test_size, rng)
    if len(test) < len(data.splits[test_src]):
        test_words += f": a seeded stratified sample of {len(test)} of its {len(data.splits[test_src])} rows"
    in_test = {data.texts[i] for i in test}
    dropped = {"train": 0, "validation": 0}
    if val_name is not None:
        val_rows, dropped["validation"] = _drop_texts(data, data.splits[val_name], in_test)
        validation = _sample(data, val_rows, validation_size, rng)
        val_words = f"official {val_name} split"
        if len(validation) < len(val_rows):
            val_words += f": a seeded stratified sample of {len(validation)} of its {len(val_rows)} rows"
        train, dropped["train"] = _drop_texts(data, train, in_test | {data.texts[i] for i in validation})
        counts = {"repeated_texts": 0, "conflicting_label_texts": 0}
        pool = train
    else:
        train, dropped["train"] = _drop_texts(data, train, in_test)
        validation_size = min(validation_size, max(1, int(0.1 * len(train))))
        (validation,), pool, counts = grouped_holdouts(data, train, [validation_size], rng)
        val_words = f"carved from {train_words} (seeded stratified, seed {seed}; equal texts kept together)"
        train_words += " minus the carved validation rows"
    if len(pool) < 10:
        raise PeftbenchError(f"the official training split has only {len(pool)} usable examples; peftbench "
                             f"needs at least ~10 (or use --resplit)")
    if dropped["train"] or dropped["validation"]:
        train_words += " minus texts also in a held-out split"
    pool = pool[stratified_order(data.labels[pool], rng)]
    origin = {"mode": "official", "train_pool": train_words, "validation": val_words, "test": test_words}
    return Split(pool, validation, test, origin,
                 {**counts, "duplicate_rows_dropped": dropped["train"] + dropped["validation"],
                  "duplicate_rows_dropped_from_train": dropped["train"],
                  "duplicate_rows_dropped_from_validation": dropped["validation"]})


def split_data(data: LabelledText, seed: int, validation_size: int, test_size: int, resplit: bool) -> Split:
    """The dataset's official splits unless `resplit` (or it has none): then our seeded stratified split."""
    if not resplit and data.splits:
        split = official_split(data, seed, validation_size, test_size)
        if split is not None:
            return split
    split = make_split(data, seed, validation_size, test_size)
    if data.splits:
        names = ", ".join(f"{s} ({len(i)})" for s, i in data.splits.items())
        why = "--resplit" if resplit else "no labelled validation or test split beside train"
        split.origin["mode"] = f"seeded ({why}; official splits pooled: {names})"
    return split


def content_hash(data: LabelledText, split: Split) -> str:
    """Hash of texts and labels in each split: two runs with equal hashes trained on equal data."""
    h = hashlib.sha256()
    for name, idx in (("train", split.train_pool), ("validation", split.validation), ("test", split.test)):
        h.update(name.encode())
        for i in idx:
            h.update(data.texts[i].encode("utf-8", "replace"))
            h.update(b"\x1f%d\x1e" % data.labels[i])
    return h.hexdigest()[:16]
