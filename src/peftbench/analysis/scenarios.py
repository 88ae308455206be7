"""Importance weights: the seed notebook's five scenarios (0-10 ratings) and user-given weights.

Weights are always normalised to sum to 1, so a rating of 10 means "twice as important as 5", not an
absolute amount.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from peftbench.analysis.scores import DIMENSION_NAMES
from peftbench.errors import PeftbenchError

# The seed notebook's section 11 ratings, verbatim (order: its dimension order).
SCENARIOS: dict[str, dict[str, int]] = {
    "performance-critical": {"parameter_efficiency": 3, "computational_efficiency": 2, "performance": 10,
                             "generalization": 7, "data_efficiency": 3, "inference_efficiency": 5},
    "resource-constrained": {"parameter_efficiency": 10, "computational_efficiency": 9, "performance": 5,
                             "generalization": 3, "data_efficiency": 7, "inference_efficiency": 8},
    "limited-data": {"parameter_efficiency": 7, "computational_efficiency": 5, "performance": 6,
                     "generalization": 8, "data_efficiency": 10, "inference_efficiency": 4},
    "deployment-focused": {"parameter_efficiency": 8, "computational_efficiency": 6, "performance": 7,
                           "generalization": 5, "data_efficiency": 3, "inference_efficiency": 10},
    "balanced": {"parameter_efficiency": 6, "computational_efficiency": 6, "performance": 7,
                 "generalization": 6, "data_efficiency": 5, "inference_efficiency": 5},
}
DEFAULT_SCENARIO = "balanced"


def normalize_weights(raw: Mapping[str, float]) -> dict[str, float]:
    """Check names and signs, then scale to sum 1 (dimensions not named get weight 0)."""
    unknown = [d for d in raw if d not in DIMENSION_NAMES]
    if unknown:
        raise PeftbenchError(f"unknown dimension {unknown[0]!r} (known: {', '.join(DIMENSION_NAMES)})")
    for dim, value in raw.items():
        if not math.isfinite(value) or value < 0:
            raise PeftbenchError(f"weight for {dim} must be a non-negative number, got {value:g}")
    total = sum(raw.values())
    if total <= 0:
        raise PeftbenchError("all weights are zero; give at least one dimension a positive weight")
    return {d: raw.get(d, 0.0) / total for d in DIMENSION_NAMES}


def scenario_weights(name: str) -> dict[str, float]:
    if name not in SCENARIOS:
        raise PeftbenchError(f"unknown scenario {name!r} (choose from {', '.join(SCENARIOS)})")
    return normalize_weights({d: float(v) for d, v in SCENARIOS[name].items()})


def parse_weights(text: str) -> dict[str, float]:
    """`performance=10,inference_efficiency=5` -> normalised weights."""
    raw: dict[str, float] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        dim, sep, value = item.partition("=")
        dim = dim.strip()
        if not sep or not dim:
            raise PeftbenchError(f"weights are dimension=value pairs separated by commas, got {item!r}")
        if dim in raw:
            raise PeftbenchError(f"dimension {dim} is given twice")
        try:
            raw[dim] = float(value)
        except ValueError:
            raise PeftbenchError(f"weight for {dim} must be a number, got {value.strip()!r}") from None
    if not raw:
        raise PeftbenchError("--weights is empty; give dimension=value pairs, e.g. performance=10")
    return normalize_weights(raw)
