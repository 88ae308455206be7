"""TOPSIS (Hwang & Yoon 1981): rank alternatives by closeness to an ideal point and distance from the
worst one. A second opinion next to the weighted score: it works on the raw measurements (vector
normalisation, so no min-max choices) and rewards being far from the worst on every criterion.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


def topsis(matrix: pd.DataFrame, weights: Mapping[str, float], directions: Mapping[str, str]) -> pd.Series:
    """Closeness in [0, 1] per row (1 = the ideal). matrix: alternatives x criteria, no NaN;
    weights: per criterion (normalised here); directions: "max" (benefit) or "min" (cost).

    Steps: r = x / ||column||; v = w * r; A+ / A- = best / worst of each column; closeness =
    d- / (d+ + d-). A lone or all-identical set of alternatives has d+ = d- = 0 and closeness 1."""
    cols = list(matrix.columns)
    x = matrix.to_numpy(float)
    w = np.array([weights[c] for c in cols], dtype=float)
    w = w / w.sum()
    norms = np.linalg.norm(x, axis=0)
    r = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    v = r * w
    benefit = np.array([directions[c] == "max" for c in cols])
    ideal = np.where(benefit, v.max(axis=0), v.min(axis=0))
    worst = np.where(benefit, v.min(axis=0), v.max(axis=0))
    d_best = np.linalg.norm(v - ideal, axis=1)
    d_worst = np.linalg.norm(v - worst, axis=1)
    span = d_best + d_worst
    closeness = np.divide(d_worst, span, out=np.ones_like(span), where=span > 0)
    return pd.Series(closeness, index=matrix.index, name="topsis")
