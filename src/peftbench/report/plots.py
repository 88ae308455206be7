"""The report's figures, drawn with matplotlib's object API (no pyplot state, Agg for PNG) and
rendered once to SVG text for inlining and PNG bytes for the folder beside the report.

Each function takes tidy per-method data and returns a Figure; it never reads the store.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from peftbench.report.labels import label_points

FIGSIZE = (6.8, 4.6)  # inches; shown about 1:1 in the report's two-column grid
STYLE = {"grid_alpha": 0.35, "label_size": 8.5, "point_alpha": 0.75}


@dataclass(frozen=True)
class Rendered:
    svg: str  # starts at <svg ...>: the XML prolog and doctype are dropped for inlining
    png: bytes


def render(fig: Figure) -> Rendered:
    svg_buf, png_buf = io.StringIO(), io.BytesIO()
    fig.savefig(svg_buf, format="svg")
    fig.savefig(png_buf, format="png", dpi=110)
    text = svg_buf.getvalue()
    return Rendered(text[text.index("<svg"):], png_buf.getvalue())


def method_colors(methods: list[str]) -> dict[str, tuple]:
    """One stable colour per method across every plot."""
    cmap = colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def _axes(title: str, xlabel: str, ylabel: str):
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, linestyle="--", alpha=STYLE["grid_alpha"])
    return fig, ax


def bubble(points: pd.DataFrame, x: str, size: str, colors: dict, *, title: str, xlabel: str,
           size_label: str, size_fmt: str, log_x: bool = False, metric: str = "accuracy") -> Figure:
    """Seed-notebook bubble plot: x vs accuracy, bubble area ~ `size`, error bars = 95% CI. `metric`: what
    the accuracy column holds (exact match for --task generate), for the axis."""
    fig, ax = _axes(title, xlabel, f"test {metric}")
    data = points.dropna(subset=[x, "accuracy"])
    sizes = data[size].fillna(0.0) if size in data else pd.Series(0.0, index=data.index)
    peak = float(sizes.max()) if len(sizes) and sizes.max() > 0 else 1.0
    area = 40 + 700 * sizes / peak
    ax.scatter(data[x], data["accuracy"], s=area, c=[colors[m] for m in data.index],
               alpha=STYLE["point_alpha"], edgecolors="black", linewidths=0.5)
    if "accuracy_ci" in data and data["accuracy_ci"].notna().any():
        ax.errorbar(data[x], data["accuracy"], yerr=data["accuracy_ci"].fillna(0.0), fmt="none",
                    ecolor="grey", elinewidth=1, capsize=3)
    if log_x:
        ax.set_xscale("log")
    if len(sizes) and sizes.max() > 0:
        for value in sorted({float(sizes.min()), float(np.median(sizes)), float(sizes.max())}):
            ax.scatter([], [], s=40 + 700 * value / peak, color="grey", alpha=0.5,
                       label=format(value, size_fmt))
        # beside the plot, not on it: no corner of the plot is sure to be free of methods
        ax.legend(title=size_label, loc="upper left", bbox_to_anchor=(1.01, 1.0), labelspacing=1.3,
                  borderpad=1.0, fontsize=8)
    ax.margins(x=0.08, y=0.12)
    label_points(ax, data[x], data["accuracy"], data.index, STYLE["label_size"])
    return fig


def radar(scores: pd.DataFrame, colors: dict) -> Figure:
    """Six dimension scores per method. Unmeasured scores are not drawn (the outline breaks there, and
    the method is not filled); a dimension nobody measured is labelled "(not measured)"."""
    dims = list(scores.columns)
    labels = [d.replace("_", "\n") + ("\n(not measured)" if scores[d].isna().all() else "") for d in dims]
    angles = np.linspace(0, 2 * math.pi, len(dims), endpoint=False).tolist()
    fig = Figure(figsize=FIGSIZE)  # fixed axes box: constrained layout clips polar tick labels
    ax = fig.add_axes((0.1, 0.1, 0.5, 0.74), projection="polar")
    fig.suptitle("Dimension scores\n(fixed scales: 0 = a constant predictor / the whole model, 1 = best)",
                 fontsize=11)  # two lines: one runs wider than the figure
    ax.set_xticks(angles, labels, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_yticks([0.25, 0.5, 0.75], ["0.25", "0.5", "0.75"], color="grey", fontsize=7)
    for method, row in scores.iterrows():
        values = row.tolist() + row.tolist()[:1]
        ax.plot(angles + angles[:1], values, linewidth=2, label=method, color=colors[method])
        if not row.isna().any():
            ax.fill(angles + angles[:1], values, alpha=0.08, color=colors[method])
    fig.legend(loc="upper right", fontsize=8, bbox_to_anchor=(0.99, 0.9))
    return fig


def data_efficiency(curves: pd.DataFrame, colors: dict, metric: str = "accuracy") -> Figure:
    """Accuracy vs training-set size per method (log x: each doubling of data one step)."""
    fig, ax = _axes(f"Data efficiency: {metric} vs training-set size", "training examples (log scale)",
                    f"{metric} on the fixed evaluation set")
    for method, grp in curves.groupby("method", sort=False):
        ax.errorbar(grp["train_size"], grp["accuracy"], yerr=grp["ci_half_width"].fillna(0.0), marker="o",
                    linewidth=2, capsize=3, label=method, color=colors.get(method))
    sizes = sorted(curves["train_size"].unique())
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return fig


def rank_sweep(curve: pd.DataFrame, chosen_rank: int, metric: str = "accuracy") -> Figure:
    """Two panels as in the seed: rank vs accuracy, and trainable % vs accuracy labelled r=..."""
    fig = Figure(figsize=(11.0, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    accs = curve["accuracy"]
    left.plot(curve["rank"], accs, marker="o", linewidth=2, label="test (reported)")
    if "val_accuracy" in curve and curve["val_accuracy"].notna().any():
        left.plot(curve["rank"], curve["val_accuracy"], marker="s", linestyle="--", linewidth=1.5,
                  color="grey", label="validation (chooses the rank)")
    left.set_xscale("log", base=2)
    left.set_xticks(curve["rank"].tolist(), [str(r) for r in curve["rank"]])
    left.minorticks_off()
    left.set(title=f"LoRA rank vs {metric}", xlabel="LoRA rank r (log2 scale)", ylabel=metric)
    areas = 30 + 12 * np.sqrt(curve["rank"])
    right.scatter(curve["trainable_pct"], accs, s=areas, alpha=STYLE["point_alpha"])
    right.set(title=f"Trainable parameters vs {metric}", xlabel="trainable parameters (% of base model)",
              ylabel=f"test {metric}")
    pick = curve[curve["rank"] == chosen_rank]
    left.scatter(pick["rank"], pick["accuracy"], marker="*", s=260, color="crimson", zorder=3,
                 label=f"smallest sufficient rank (r={chosen_rank})")
    left.legend(fontsize=8, loc="best")  # the corner freest of the curves: none is free for every sweep
    for ax in (left, right):
        ax.grid(True, linestyle="--", alpha=STYLE["grid_alpha"])
        ax.margins(y=0.15)
    label_points(right, curve["trainable_pct"], accs, [f"r={r}" for r in curve["rank"]], STYLE["label_size"])
    return fig


def pareto(table: pd.DataFrame, x: str, y: str, colors: dict, y_label: str | None = None) -> Figure:
    """y (max) vs x (min, log scale): the front drawn as a staircase, dominated methods in grey."""
    y_label = y_label or y
    fig, ax = _axes(f"Pareto front: {y_label} (higher) vs {x} (lower)", f"{x} (log scale)", y_label)
    front = table[table["on_front"]].sort_values(x)
    rest = table[~table["on_front"]]
    ax.scatter(rest[x], rest[y], color="lightgrey", edgecolors="grey", s=60, label="dominated")
    ax.scatter(front[x], front[y], c=[colors[m] for m in front.index], edgecolors="black", s=90,
               label="on the front", zorder=3)
    ax.step(front[x], front[y], where="post", color="black", linewidth=1, alpha=0.6)
    ax.set_xscale("log")
    ax.margins(x=0.08, y=0.12)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the plot, as in bubble
    label_points(ax, table[x], table[y], table.index, STYLE["label_size"])
    return fig


def _method_axis(ax, methods: list[str]) -> None:
    """Methods side by side on a categorical x axis, names slanted so long ones stay readable."""
    ax.set_xticks(range(len(methods)), methods, rotation=25, ha="right", fontsize=STYLE["label_size"])
    ax.set_xlim(-0.6, len(methods) - 0.4)


def _error_bars(values: pd.Series, low: pd.Series, high: pd.Series) -> np.ndarray:
    """Asymmetric bar lengths (row-bootstrap and Wilson intervals are not symmetric); 0 where unknown."""
    below = (values - low).clip(lower=0).fillna(0.0)
    above = (high - values).clip(lower=0).fillna(0.0)
    return np.vstack([below.to_numpy(float), above.to_numpy(float)])


def exact_match_vs_floor(points: pd.DataFrame, floor: float, colors: dict) -> Figure:
    """Validation exact match per method (`value`, `low`, `high`: mean and 95% interval) above the untrained
    model's on the same rows (dashed line): the height over the line is what training bought. The floor is
    a line, not a band: methods and floor share rows, so the paired gain interval (in the table) is the
    test, not the overlap of two separate intervals."""
    fig, ax = _axes("Validation exact match vs the zero-shot floor", "", "validation exact match")
    methods = list(points.index)
    xs = np.arange(len(methods))
    ax.errorbar(xs, points["value"], yerr=_error_bars(points["value"], points["low"], points["high"]),
                fmt="none", ecolor="grey", elinewidth=1.2, capsize=4, zorder=2)
    ax.scatter(xs, points["value"], s=70, c=[colors[m] for m in methods], edgecolors="black",
               linewidths=0.5, zorder=3)
    ax.axhline(floor, color="crimson", linestyle="--", linewidth=1.5, label=f"zero-shot floor ({floor:.3f})")
    _method_axis(ax, methods)
    ax.set_ylim(-0.03, 1.03)  # a share: the whole scale keeps "what training bought" in proportion
    ax.legend(fontsize=8, loc="upper right")
    return fig


def forgetting(points: pd.DataFrame, colors: dict) -> Figure:
    """Forgetting per method (`value`, `low`, `high`): general-text cross-entropy after - before training,
    nats per token, as bars from 0; above 0 the model predicts ordinary text worse than the base did."""
    fig, ax = _axes("Forgetting: general-text cross-entropy after - before", "",
                    "forgetting (nats per token; 0 = unchanged)")
    methods = list(points.index)
    xs = np.arange(len(methods))
    bars = ax.bar(xs, points["value"], color=[colors[m] for m in methods], alpha=STYLE["point_alpha"],
                  edgecolor="black", linewidth=0.5, zorder=2)
    ax.bar_label(bars, fmt="%+.3g", fontsize=STYLE["label_size"], padding=2)
    if points["low"].notna().any():
        ax.errorbar(xs, points["value"], yerr=_error_bars(points["value"], points["low"], points["high"]),
                    fmt="none", ecolor="grey", elinewidth=1.2, capsize=4, zorder=3)
    ax.axhline(0.0, color="black", linewidth=1.2, zorder=1)
    _method_axis(ax, methods)
    ax.margins(y=0.15)
    low, high = ax.get_ylim()
    pad = 0.1 * (high - low)  # 0 stays inside the frame, with room for labels, when every bar is one-sided
    ax.set_ylim(min(low, -pad), max(high, pad))
    return fig
