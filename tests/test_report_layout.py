"""The report's figures are readable: drawn for data shaped like the default study (twelve seed methods,
several of them almost on top of each other), no method label covers another label, a marker or a legend,
and every text of the figure (titles, axis labels, tick labels, legends) lies inside it.

The boxes are the renderer's own (fig.canvas.draw(), then get_window_extent), at the two resolutions the
report renders at: 72 dpi (the inline SVG) and 110 dpi (the PNG beside it).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.text import Text

from peftbench.analysis.pareto import Objective, pareto_table
from peftbench.analysis.scores import DIMENSION_NAMES
from peftbench.methods import DECODER_PRESETS, SEED_PRESETS
from peftbench.report import plots
from peftbench.studies.definitions import DATA_EFFICIENCY_SIZES, RANK_SWEEP_RANKS
from peftbench.tasks import task_named

DATA_EFFICIENCY_METHODS = list(task_named("classify").data_efficiency_methods[0])

DPIS = (72, 110)  # plots.render: SVG at 72, PNG at 110

# The README's default study (one seed): trainable params, % params, train s, net train MB, test acc, CI half.
DEFAULT_STUDY = {
    "Full": (22_713_986, 100.0, 27.1, 776, 0.789, 0.027),
    "LoRA-r4": (203_906, 0.898, 20.5, 653, 0.772, 0.029),
    "LoRA-r8": (259_202, 1.141, 19.7, 662, 0.775, 0.029),
    "LoRA-r16": (369_794, 1.628, 18.8, 658, 0.766, 0.030),
    "LoRA-r32": (590_978, 2.602, 20.9, 656, 0.774, 0.029),
    "LoRA-AllLayers": (480_386, 2.115, 26.5, 872, 0.781, 0.029),
    "AdaLoRA": (314_714, 1.386, 20.7, 633, 0.754, 0.030),
    "PrefixTuning-len16": (222_338, 0.979, 17.0, 536, 0.740, 0.030),
    "PrefixTuning-len32": (296_066, 1.303, 18.6, 558, 0.725, 0.031),
    "PromptTuning-len16": (270_082, 1.189, 25.3, 621, 0.626, 0.033),
    "PromptTuning-len32": (276_226, 1.216, 35.1, 754, 0.576, 0.034),
    "BitFit": (174_338, 0.768, 16.5, 485, 0.739, 0.030),
}
IA3 = (66_818, 0.294, 16.1, 470, 0.731, 0.030)
# tradeoff_section's three bubble plots: x, bubble size, x label, size label, size format, log x
BUBBLES = [("trainable_pct", "train_seconds", "trainable parameters (% of base model, log scale)",
            "train seconds", ".0f", True),
           ("train_seconds", "trainable_pct", "training time (s)", "trainable %", ".3g", False),
           ("train_memory_mb", "trainable_pct", "peak training memory, net of the process baseline (MB)",
            "trainable %", ".3g", False)]


def study_means(variant: str) -> pd.DataFrame:
    """Per-method means as report/html.py hands them to the plots. `readme`: the README's run; `crowded`:
    the same with LoRA-r4/LoRA-r8, BitFit/PrefixTuning-len16 and LoRA-AllLayers/LoRA-r32 nearly coincident
    on every axis, plus IA3 (13 methods: the 20-colour map)."""
    rows = dict(DEFAULT_STUDY)
    if variant == "crowded":
        pairs = (("LoRA-r4", "LoRA-r8"), ("BitFit", "PrefixTuning-len16"), ("LoRA-AllLayers", "LoRA-r32"))
        for near, ref in pairs:
            params, pct, secs, mb, acc, ci = rows[ref]
            rows[near] = (params * 0.99, pct * 0.99, secs + 0.1, mb + 2, acc - 0.001, ci)
        rows["IA3"] = IA3
    assert set(DEFAULT_STUDY) == set(SEED_PRESETS)  # the default study is the seed method set
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["trainable_params", "trainable_pct",
                                                                  "train_seconds", "train_memory_mb",
                                                                  "accuracy", "accuracy_ci"])
    return frame.astype(float)


def drawn(fig: Figure, dpi: int):
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def overlap(a, b) -> bool:
    """Two display boxes share area (touching edges is allowed)."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > 0.01 and min(a.y1, b.y1) - max(a.y0, b.y0) > 0.01


def box_hits_circle(box, cx: float, cy: float, r: float) -> bool:
    nearest_x, nearest_y = min(max(cx, box.x0), box.x1), min(max(cy, box.y0), box.y1)
    return math.hypot(nearest_x - cx, nearest_y - cy) < r - 0.01


def markers(ax, dpi: int) -> list[tuple[float, float, float]]:
    """Every scatter marker of the axes as a display circle (centre x, centre y, radius incl. its edge)."""
    out = []
    for coll in ax.collections:
        if not isinstance(coll, PathCollection) or len(coll.get_offsets()) == 0:
            continue
        centres = coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), float))
        sizes = np.resize(coll.get_sizes(), len(centres))
        widths = np.resize(coll.get_linewidths(), len(centres))
        for (cx, cy), s, lw in zip(centres, sizes, widths):
            out.append((cx, cy, (math.sqrt(s) / 2 + lw / 2) * dpi / 72))
    return out


def assert_inside_figure(fig: Figure, renderer) -> None:
    """Titles and axis labels by name (for a clear message), then everything drawn via the tight box."""
    width, height = fig.bbox.width, fig.bbox.height
    named = [t for t in fig.texts]
    for ax in fig.axes:
        named += [ax.title, ax.xaxis.label, ax.yaxis.label]
    for text in named:
        if not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        assert box.x0 >= -0.5 and box.y0 >= -0.5 and box.x1 <= width + 0.5 and box.y1 <= height + 0.5, \
            f"{text.get_text()!r} reaches outside the figure: {box} vs {width:.0f}x{height:.0f}"
    tight = fig.get_tightbbox(renderer)  # inches; every drawn artist, tick labels and legends included
    w_in, h_in = fig.get_size_inches()
    assert tight.x0 >= -0.01 and tight.y0 >= -0.01 and tight.x1 <= w_in + 0.01 and tight.y1 <= h_in + 0.01, \
        f"something drawn reaches outside the {w_in}x{h_in} in figure: {tight}"


def assert_legends_clear(ax, renderer, dpi: int) -> None:
    """No legend hides a scatter marker or a data point of a plotted series."""
    series = [line for line in ax.lines
              if not line.get_label().startswith("_") and line.get_marker() not in ("", "None", None)]
    points = [xy for line in series for xy in line.get_transform().transform(line.get_xydata())]
    for legend in [ax.get_legend(), *ax.figure.legends]:
        if legend is not None:
            box = legend.get_window_extent(renderer)
            assert not any(box_hits_circle(box, *c) for c in markers(ax, dpi)), "a legend hides a marker"
            assert not any(box.contains(*xy) for xy in points), "a legend hides a data point"


def assert_labels_clear(ax, renderer, dpi: int) -> list:
    """Every text inside the axes clears every other one, every scatter marker and every legend."""
    assert_legends_clear(ax, renderer, dpi)
    labels = [t for t in ax.texts if t.get_visible() and t.get_text().strip()]
    boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the words, without a leader line
    for i, (a, box_a) in enumerate(zip(labels, boxes)):
        for b, box_b in zip(labels[i + 1:], boxes[i + 1:]):
            assert not overlap(box_a, box_b), f"label {a.get_text()!r} overlaps label {b.get_text()!r}"
        for cx, cy, r in markers(ax, dpi):
            assert not box_hits_circle(box_a, cx, cy, r), \
                f"label {a.get_text()!r} covers a marker at ({cx:.0f}, {cy:.0f})"
        for legend in [ax.get_legend(), *ax.figure.legends]:
            if legend is not None:
                assert not overlap(box_a, legend.get_window_extent(renderer)), \
                    f"label {a.get_text()!r} overlaps the legend"
        assert ax.bbox.contains(box_a.x0, box_a.y0) and ax.bbox.contains(box_a.x1, box_a.y1), \
            f"label {a.get_text()!r} leaves the plotting area"
    return labels


def slanted_corners(box, degrees: float) -> np.ndarray:
    """The corners of a text rotated by `degrees`, recovered from its axis-aligned window extent."""
    theta = math.radians(degrees)
    c, s = math.cos(theta), math.sin(theta)
    width, height = box.width, box.height  # W = w c + h s, H = w s + h c: solve for w, h
    det = c * c - s * s
    w, h = (width * c - height * s) / det, (height * c - width * s) / det
    origin = np.array([box.x0 + h * s, box.y0])
    u, v = np.array([c, s]), np.array([-s, c])
    return np.array([origin, origin + w * u, origin + w * u + h * v, origin + h * v])


def polygons_overlap(p: np.ndarray, q: np.ndarray) -> bool:
    """Separating axis test for two convex polygons."""
    for poly in (p, q):
        for i in range(len(poly)):
            edge = poly[(i + 1) % len(poly)] - poly[i]
            axis = np.array([-edge[1], edge[0]])
            a, b = p @ axis, q @ axis
            if a.max() <= b.min() + 1e-6 or b.max() <= a.min() + 1e-6:
                return False
    return True


@pytest.fixture(params=["readme", "crowded"])
def means(request) -> pd.DataFrame:
    return study_means(request.param)


@pytest.mark.parametrize("dpi", DPIS)
@pytest.mark.parametrize("bubble", BUBBLES, ids=[b[0] for b in BUBBLES])
def test_bubble_labels_clear_each_other_markers_and_legend(means, bubble, dpi):
    x, size, xlabel, size_label, size_fmt, log_x = bubble
    colors = plots.method_colors(list(means.index))
    fig = plots.bubble(means, x, size, colors, title="Parameter efficiency vs performance", xlabel=xlabel,
                       size_label=size_label, size_fmt=size_fmt, log_x=log_x)
    renderer = drawn(fig, dpi)
    labels = assert_labels_clear(fig.axes[0], renderer, dpi)
    assert sorted(t.get_text() for t in labels) == sorted(means.index)  # every method named, once
    assert_inside_figure(fig, renderer)


@pytest.mark.parametrize("dpi", DPIS)
def test_pareto_labels_clear_each_other_markers_and_legend(means, dpi):
    table = pareto_table(means, [Objective("accuracy", "max"), Objective("trainable_params", "min")])
    fig = plots.pareto(table, "trainable_params", "accuracy", plots.method_colors(list(means.index)),
                       y_label="test accuracy")
    renderer = drawn(fig, dpi)
    labels = assert_labels_clear(fig.axes[0], renderer, dpi)
    assert sorted(t.get_text() for t in labels) == sorted(table.index)
    assert_inside_figure(fig, renderer)


@pytest.mark.parametrize("dpi", DPIS)
def test_rank_sweep_labels_and_legend_clear_and_inside(dpi):
    ranks = np.array(RANK_SWEEP_RANKS, float)
    curve = pd.DataFrame({"rank": RANK_SWEEP_RANKS, "trainable_pct": 0.65 + 0.061 * ranks,
                          "accuracy": [0.770, 0.771, 0.772, 0.775, 0.766, 0.774, 0.771],
                          "val_accuracy": [0.765, 0.770, 0.773, 0.773, 0.779, 0.789, 0.781]})
    fig = plots.rank_sweep(curve, 8)
    renderer = drawn(fig, dpi)
    assert_legends_clear(fig.axes[0], renderer, dpi)
    labels = assert_labels_clear(fig.axes[1], renderer, dpi)
    assert sorted(t.get_text() for t in labels) == sorted(f"r={r}" for r in RANK_SWEEP_RANKS)
    assert_inside_figure(fig, renderer)


def radar_scores(methods: list[str], unmeasured: str | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    scores = pd.DataFrame(rng.uniform(0.2, 1.0, (len(methods), len(DIMENSION_NAMES))), index=methods,
                          columns=list(DIMENSION_NAMES))
    if unmeasured:
        scores[unmeasured] = np.nan
    return scores


@pytest.mark.parametrize("dpi", DPIS)
@pytest.mark.parametrize("methods, unmeasured", [
    (["Full", "LoRA-r8", "PrefixTuning-len32", "BitFit", "AdaLoRA"], None),  # the report's default five
    (list(DEFAULT_STUDY), "data_efficiency"),  # --radar with every method; one dimension never measured
], ids=["default-five", "all-twelve"])
def test_radar_title_dimensions_and_legend_inside_and_apart(methods, unmeasured, dpi):
    fig = plots.radar(radar_scores(methods, unmeasured), plots.method_colors(list(DEFAULT_STUDY)))
    renderer = drawn(fig, dpi)
    assert_inside_figure(fig, renderer)
    polar = fig.axes[0]
    legend_box = fig.legends[0].get_window_extent(renderer)
    assert not overlap(polar.get_tightbbox(renderer), legend_box), "the legend covers the radar"
    for text in fig.texts:  # the title clears the radar's dimension names
        assert not overlap(text.get_window_extent(renderer), polar.get_tightbbox(renderer))
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == sorted(methods)


@pytest.mark.parametrize("dpi", DPIS)
def test_data_efficiency_inside_and_legend_clear(dpi):
    rows = [{"method": m, "train_size": n, "accuracy": 0.55 + 0.05 * i + 0.02 * j, "ci_half_width": 0.05}
            for j, m in enumerate(DATA_EFFICIENCY_METHODS) for i, n in enumerate(DATA_EFFICIENCY_SIZES)]
    fig = plots.data_efficiency(pd.DataFrame(rows), plots.method_colors(DATA_EFFICIENCY_METHODS))
    renderer = drawn(fig, dpi)
    assert_inside_figure(fig, renderer)
    assert_legends_clear(fig.axes[0], renderer, dpi)


def assert_slanted_ticks_apart(ax, renderer) -> None:
    ticks = [t for t in ax.get_xticklabels() if t.get_text()]
    corners = [slanted_corners(t.get_window_extent(renderer), t.get_rotation()) for t in ticks]
    for i in range(len(ticks)):
        for j in range(i + 1, len(ticks)):
            assert not polygons_overlap(corners[i], corners[j]), \
                f"method names {ticks[i].get_text()!r} and {ticks[j].get_text()!r} overlap"


@pytest.mark.parametrize("dpi", DPIS)
@pytest.mark.parametrize("methods", [DECODER_PRESETS, list(DEFAULT_STUDY)], ids=["decoder-six", "twelve"])
def test_per_method_decoder_plots_inside_and_apart(methods, dpi):
    n = len(methods)
    em = pd.DataFrame({"value": np.linspace(0.30, 0.42, n)}, index=methods)
    em["low"], em["high"] = em["value"] - 0.06, em["value"] + 0.06
    forget = pd.DataFrame({"value": np.linspace(-0.002, 0.04, n)}, index=methods)
    forget["low"], forget["high"] = forget["value"] - 0.004, forget["value"] + 0.004
    colors = plots.method_colors(methods)
    for fig in (plots.exact_match_vs_floor(em, 0.21, colors), plots.forgetting(forget, colors)):
        renderer = drawn(fig, dpi)
        assert_inside_figure(fig, renderer)
        assert_slanted_ticks_apart(fig.axes[0], renderer)
        assert_labels_clear(fig.axes[0], renderer, dpi)  # the forgetting bars' value labels


def test_slanted_corners_recover_a_rotated_text():
    """The helper the slanted-label check rests on: corners match the text's real geometry."""
    fig = Figure(figsize=(3, 3), dpi=100)
    text = fig.text(0.5, 0.5, "PrefixTuning-len16", rotation=25, ha="right", fontsize=9)
    renderer = drawn(fig, 100)
    straight = fig.text(0.5, 0.5, "PrefixTuning-len16", fontsize=9).get_window_extent(renderer)
    corners = slanted_corners(text.get_window_extent(renderer), 25)
    assert np.linalg.norm(corners[1] - corners[0]) == pytest.approx(straight.width, rel=0.03)
    assert np.linalg.norm(corners[3] - corners[0]) == pytest.approx(straight.height, rel=0.05)
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    assert polygons_overlap(square, square + 0.5) and not polygons_overlap(square, square + [1.5, 0])
