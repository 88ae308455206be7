"""Per-row predictions, stored compactly in a trial record so every interval can be recomputed later.

A trial stores its test (and OOD, and perturbed) predicted labels and the true labels as short strings:
one character per row when there are at most 36 classes ("0"-"9", "a"-"z"), else comma-separated
integers. 800 test rows cost 800 bytes, and the record stays plain JSON.
"""

from __future__ import annotations

import numpy as np

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_VALUE = {c: i for i, c in enumerate(_DIGITS)}


def encode(values) -> str:
    """Integer labels (>= 0) -> compact text; the inverse of `decode`."""
    arr = np.asarray(values, dtype=np.int64).ravel()
    if arr.size and (arr.min() < 0):
        raise ValueError("labels to encode must be >= 0")
    if arr.size == 0 or arr.max() < len(_DIGITS):
        return "".join(_DIGITS[v] for v in arr.tolist())
    return "," + ",".join(map(str, arr.tolist()))  # the leading comma marks the long form


def decode(text: str | None) -> np.ndarray:
    """Compact text -> int64 array (empty for None or "")."""
    if not text:
        return np.empty(0, dtype=np.int64)
    if text.startswith(","):
        return np.asarray([int(v) for v in text[1:].split(",")], dtype=np.int64)
    return np.asarray([_VALUE[c] for c in text], dtype=np.int64)
