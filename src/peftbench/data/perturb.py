"""Seeded text perturbations for robustness: typos, word dropout, adjacent swaps, case changes.

Each function changes about `rate` of the words, at least one per text where possible, and is a pure
function of (text, rate, seed) so every trial sees the same perturbed test set.
"""

from __future__ import annotations

import random
import zlib
from typing import Callable

KEYS = "abcdefghijklmnopqrstuvwxyz"


def _rng(text: str, seed: int, kind: str) -> random.Random:
    return random.Random(zlib.crc32(f"{seed}\x00{kind}\x00{text}".encode("utf-8", "replace")))


def _picked(n: int, rate: float, rng: random.Random) -> set[int]:
    k = max(1, round(n * rate)) if n else 0
    return set(rng.sample(range(n), min(k, n)))


def typos(text: str, rate: float, seed: int) -> str:
    """Swap, drop, insert or replace one character in about `rate` of the (alphabetic) words."""
    rng = _rng(text, seed, "typo")
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if sum(ch.isalpha() for ch in w) >= 2]
    for j in _picked(len(candidates), rate, rng):
        i = candidates[j]
        w = list(words[i])
        pos = rng.randrange(len(w) - 1)
        op = rng.choice(("swap", "drop", "insert", "replace"))
        if op == "swap" and w[pos] != w[pos + 1]:
            w[pos], w[pos + 1] = w[pos + 1], w[pos]
        elif op == "drop":
            del w[pos]
        elif op == "insert":
            w.insert(pos, rng.choice(KEYS))
        else:
            w[pos] = rng.choice([k for k in KEYS if k != w[pos].lower()])
        words[i] = "".join(w)
    return " ".join(words)


def word_dropout(text: str, rate: float, seed: int) -> str:
    """Delete about `rate` of the words (never all of them)."""
    rng = _rng(text, seed, "drop")
    words = text.split()
    if len(words) < 2:
        return text
    drop = _picked(len(words), rate, rng)
    if len(drop) >= len(words):
        drop.pop()
    return " ".join(w for i, w in enumerate(words) if i not in drop)


def adjacent_swap(text: str, rate: float, seed: int) -> str:
    """Swap about `rate` of the words with their right neighbour."""
    rng = _rng(text, seed, "swap")
    words = text.split()
    if len(words) < 2:
        return text
    for i in sorted(_picked(len(words) - 1, rate, rng)):
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def case_change(text: str, rate: float, seed: int) -> str:
    """Upper-case, lower-case or title-case about `rate` of the words (a no-op for uncased models)."""
    rng = _rng(text, seed, "case")
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if any(ch.isalpha() for ch in w)]
    for j in _picked(len(candidates), rate, rng):
        i = candidates[j]
        w = words[i]
        options = [v for v in (w.upper(), w.lower(), w.title(), w.swapcase()) if v != w]
        words[i] = rng.choice(options) if options else w
    return " ".join(words)


PERTURBATIONS: dict[str, Callable[[str, float, int], str]] = {
    "typo": typos, "word_dropout": word_dropout, "word_swap": adjacent_swap, "case": case_change,
}
