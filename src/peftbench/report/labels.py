"""Name each point of a scatter plot where the name covers nothing: no other name, marker, error bar or
legend, and no leader line crosses a name.

Methods of one study often sit almost on top of each other (LoRA-r4 and LoRA-r8 differ by 0.3 points of
accuracy and 0.2% of parameters), so a name printed at a fixed offset lands on its neighbour's. Here each
name takes the free spot nearest its marker, searched over the whole plotting area in display space, and a
thin leader line joins it to the marker when it had to move away. Deterministic and dependency-free, unlike
adjustText, which nudges labels iteratively and guarantees nothing when points coincide.

The search needs the final layout, so the figure is drawn once first and its layout engine then frozen.
Offsets are in points and names are measured at every resolution the report renders at, so the placement
holds in the 72-dpi SVG and the 110-dpi PNG alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

GAP_PT = 2.0  # clear space kept around every name, in points
STEP_PX = 2.0  # spacing of the candidate spots
DETOUR_PT = 40.0  # a name moves this much further to keep a line off it, twice that to sit by its own marker
LEADER_PT = 4.0  # a name further than this from its marker's edge gets a leader line
RENDER_DPIS = (72.0, 110.0)  # plots.render: the inline SVG and the PNG
LEADER_STYLE = {"arrowstyle": "-", "color": "#444444", "linewidth": 0.7, "alpha": 0.8, "shrinkA": 0.5}


def settle(fig):
    """Draw once (layout and axis limits become final) and freeze the layout; returns the renderer."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    fig.set_layout_engine("none")  # the axes stay where the names were measured against
    return canvas.get_renderer()


def text_size_pt(text: str, fontsize: float, dpi: float) -> tuple[float, float]:
    """Width and height of a name in points, the largest over the resolutions it is drawn at: hinting
    makes small text up to a tenth wider at 72 dpi than at 110."""
    sizes = []
    for each in sorted({*RENDER_DPIS, float(dpi)}):
        scratch = Figure(dpi=each)
        renderer = FigureCanvasAgg(scratch).get_renderer()
        box = scratch.text(0, 0, text, fontsize=fontsize).get_window_extent(renderer)
        sizes.append((box.width * 72 / each, box.height * 72 / each))
    return max(w for w, _ in sizes), max(h for _, h in sizes)


def _circles(ax) -> np.ndarray:
    """Every scatter marker of the axes as (x, y, radius) in display pixels, its edge included."""
    out = []
    for coll in ax.collections:
        if not isinstance(coll, PathCollection) or len(coll.get_offsets()) == 0:
            continue
        centres = coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), float))
        sizes = np.resize(coll.get_sizes(), len(centres))
        widths = np.resize(coll.get_linewidths(), len(centres))
        radii = (np.sqrt(sizes) / 2 + widths / 2) * ax.figure.dpi / 72
        out.append(np.column_stack([centres, radii]))
    return np.vstack(out) if out else np.empty((0, 3))


def _bar_boxes(ax, pad: float) -> list[np.ndarray]:
    """Error bars (the upright or level segments of a LineCollection) as thin display boxes."""
    out = []
    for coll in ax.collections:
        if not isinstance(coll, LineCollection):
            continue
        for seg in coll.get_segments():
            ends = coll.get_transform().transform(np.asarray(seg, float))
            low, high = ends.min(axis=0), ends.max(axis=0)
            if min(high - low) < 1.0:  # straight up or across: its box is the line itself
                out.append(np.concatenate([low - pad, high + pad]))
    return out


def _line_segments(ax) -> np.ndarray:
    """Every drawn line of the axes (a Pareto staircase, a curve) as display segments (S, 4)."""
    out = []
    for line in ax.lines:
        if line.get_linestyle() in ("None", "none", "", " ") or not line.get_visible():
            continue
        xy = line.get_transform().transform(line.get_path().vertices)  # the path is already stepped
        if len(xy) > 1:
            out.append(np.column_stack([xy[:-1], xy[1:]]))
    return np.vstack(out) if out else np.empty((0, 4))


def _hits_boxes(cand: np.ndarray, boxes: list) -> np.ndarray:
    """cand (N, 4) and boxes (M, 4) as x0, y0, x1, y1: how many boxes each candidate overlaps."""
    if not boxes:
        return np.zeros(len(cand), int)
    b = np.array(boxes)
    w = np.minimum(cand[:, None, 2], b[None, :, 2]) - np.maximum(cand[:, None, 0], b[None, :, 0])
    h = np.minimum(cand[:, None, 3], b[None, :, 3]) - np.maximum(cand[:, None, 1], b[None, :, 1])
    return ((w > 0) & (h > 0)).sum(axis=1)


def _hits_circles(cand: np.ndarray, circles: np.ndarray) -> np.ndarray:
    if len(circles) == 0:
        return np.zeros(len(cand), int)
    cx, cy, r = circles[None, :, 0], circles[None, :, 1], circles[None, :, 2]
    nx = np.clip(cx, cand[:, None, 0], cand[:, None, 2])
    ny = np.clip(cy, cand[:, None, 1], cand[:, None, 3])
    return (np.hypot(nx - cx, ny - cy) < r).sum(axis=1)


def _crossings(starts: np.ndarray, ends: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(S, B): whether segment s (starts[s] -> ends[s]) runs through box b, by clipping (Liang-Barsky)."""
    if len(starts) == 0 or len(boxes) == 0:
        return np.zeros((len(starts), len(boxes)), bool)
    s, d, b = starts[:, None, :], (ends - starts)[:, None, :], boxes[None, :, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        t0, t1 = (b[..., :2] - s) / d, (b[..., 2:] - s) / d
    level = (s > b[..., :2]) & (s < b[..., 2:])  # along an axis it does not move, it must lie in the slab
    t_low = np.where(d == 0, np.where(level, -np.inf, np.inf), np.minimum(t0, t1))
    t_high = np.where(d == 0, np.where(level, np.inf, -np.inf), np.maximum(t0, t1))
    return np.maximum(t_low.max(axis=2), 0.0) < np.minimum(t_high.min(axis=2), 1.0)


def _closer_to_another(cand: np.ndarray, circles: np.ndarray, x: float, y: float, own_r: float) -> np.ndarray:
    """Whether the name's centre is nearer another marker's edge than its own marker's, where a reader
    would pair them wrongly."""
    centres = (cand[:, :2] + cand[:, 2:]) / 2
    own = np.hypot(centres[:, 0] - x, centres[:, 1] - y) - own_r
    others = circles[np.hypot(circles[:, 0] - x, circles[:, 1] - y) >= 0.5]
    if len(others) == 0:
        return np.zeros(len(cand), bool)
    gaps = np.hypot(centres[:, None, 0] - others[None, :, 0], centres[:, None, 1] - others[None, :, 1])
    return (gaps - others[None, :, 2] < own[:, None]).any(axis=1)


def _leaders_cross(start: np.ndarray, ends: np.ndarray, leaders: list) -> np.ndarray:
    """How many earlier leader lines each candidate leader (start -> ends[n]) crosses."""
    def turn(a, b, c):  # the sign of the turn a -> b -> c
        ab, ac = b - a, c - a
        return np.sign(ab[..., 0] * ac[..., 1] - ab[..., 1] * ac[..., 0])
    count = np.zeros(len(ends), int)
    for q1, q2 in leaders:
        count += ((turn(start, ends, q1) * turn(start, ends, q2) < 0)
                  & (turn(q1, q2, start) * turn(q1, q2, ends) < 0))
    return count


def _crowding_order(points: np.ndarray, radius: float) -> list[int]:
    """The most crowded points choose first: they have the fewest free spots nearby."""
    dist = np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))
    crowd = (dist < radius).sum(axis=1)
    return sorted(range(len(points)), key=lambda i: (-crowd[i], i))


@dataclass
class _Scene:
    """What the names keep clear of, in display pixels; `names` and leader lines grow as names are placed."""
    circles: np.ndarray  # (M, 3) markers: x, y, radius
    bars: list  # error bars, as thin boxes
    lines: np.ndarray  # other drawn lines, as segments (S, 4)
    legends: list
    detour: float  # how much further (px) a name may sit to spare one crossed line or a misleading spot
    names: list = field(default_factory=list)  # placed names with their clear space
    starts: list = field(default_factory=list)  # leader lines: marker centre -> name edge
    ends: list = field(default_factory=list)

    def choose(self, cand: np.ndarray, x: float, y: float, own_r: float) -> tuple[int, np.ndarray]:
        """The best candidate box for the name of the marker at (x, y), and where its leader would end.
        Covering a name, a marker or a legend is ruled out wherever there is room; then the nearest spot,
        each line through the name (an error bar, a curve, a leader) or leader through a marker counting
        as one detour, a spot nearer another marker than its own as two (a reader would pair them wrongly)."""
        ends = np.column_stack([np.clip(x, cand[:, 0], cand[:, 2]), np.clip(y, cand[:, 1], cand[:, 3])])
        starts = np.tile([x, y], (len(cand), 1))
        others = self.circles[np.hypot(self.circles[:, 0] - x, self.circles[:, 1] - y) >= 0.5]
        marker_boxes = np.column_stack([others[:, :2] - others[:, 2:], others[:, :2] + others[:, 2:]])
        covers = _hits_circles(cand, self.circles) + _hits_boxes(cand, self.legends + self.names)
        crossed = np.array(self.names + list(marker_boxes)).reshape(-1, 4)  # by this name's own leader
        crosses = (_hits_boxes(cand, self.bars)
                   + _crossings(self.lines[:, :2], self.lines[:, 2:], cand).sum(axis=0)
                   + _crossings(starts, ends, crossed).sum(axis=1)
                   + _crossings(np.array(self.starts).reshape(-1, 2), np.array(self.ends).reshape(-1, 2),
                                cand).sum(axis=0)
                   + _leaders_cross(np.array([x, y]), ends, list(zip(self.starts, self.ends))))
        reach = np.hypot(ends[:, 0] - x, ends[:, 1] - y)
        centres = (cand[:, :2] + cand[:, 2:]) / 2  # at equal distance: under or over the marker, then above
        cost = (reach + self.detour * (crosses + 2 * _closer_to_another(cand, self.circles, x, y, own_r))
                + 1e-3 * (np.abs(centres[:, 0] - x) + np.maximum(y - centres[:, 1], 0)))
        best = int(np.lexsort((cost, covers))[0])
        return best, ends[best]


def _candidates(area, half_w: float, half_h: float) -> np.ndarray:
    """Boxes of the given half size centred on a fine grid, every one inside the plotting area (a name
    wider or taller than the area gets the area's middle along that side)."""
    def centres(low: float, high: float, half: float) -> np.ndarray:
        return np.arange(low + half, high - half + 1e-9, STEP_PX) if high - low >= 2 * half else \
            np.array([(low + high) / 2])
    grid = np.meshgrid(centres(area.x0, area.x1, half_w), centres(area.y0, area.y1, half_h))
    cx, cy = (a.ravel() for a in grid)
    return np.column_stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h])


def label_points(ax, xs, ys, labels, fontsize: float) -> list:
    """Annotate (xs[i], ys[i]) with labels[i] in free space inside the axes; call it last, once markers,
    error bars and legends (what the names keep clear of) are all drawn."""
    fig = ax.figure
    renderer = settle(fig)
    px_per_pt = fig.dpi / 72
    gap = GAP_PT * px_per_pt
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    points = ax.transData.transform(np.column_stack([xs, ys]))
    drawable = np.isfinite(points).all(axis=1)  # NaN, or <= 0 on a log axis: no marker, so no name
    legends = [lg for lg in [ax.get_legend(), *fig.legends] if lg is not None]
    scene = _Scene(_circles(ax), _bar_boxes(ax, px_per_pt), _line_segments(ax),
                   [lg.get_window_extent(renderer).extents for lg in legends], DETOUR_PT * px_per_pt)
    annotations: list = [None] * len(points)
    for i in _crowding_order(points, 40 * px_per_pt):
        if not drawable[i]:
            continue
        x, y = points[i]
        own_r = next((r for px, py, r in scene.circles if np.hypot(px - x, py - y) < 0.5), 0.0)
        width, height = text_size_pt(str(labels[i]), fontsize, fig.dpi)
        cand = _candidates(ax.bbox, width * px_per_pt / 2 + gap, height * px_per_pt / 2 + gap)
        best, end = scene.choose(cand, x, y, own_r)
        scene.names.append(cand[best])
        box = cand[best] + np.array([gap, gap, -gap, -gap])  # the text itself, without its clear space
        leader = {}
        if np.hypot(end[0] - x, end[1] - y) - own_r > LEADER_PT * px_per_pt:
            scene.starts.append(np.array([x, y]))
            scene.ends.append(end)
            end_x, end_y = np.clip(x, box[0], box[2]), np.clip(y, box[1], box[3])
            relpos = ((end_x - box[0]) / (box[2] - box[0]), (end_y - box[1]) / (box[3] - box[1]))
            leader = {"arrowprops": dict(LEADER_STYLE, relpos=relpos, shrinkB=own_r / px_per_pt)}
        offset = ((box[:2] + box[2:]) / 2 - points[i]) / px_per_pt
        annotations[i] = ax.annotate(str(labels[i]), (xs[i], ys[i]), xytext=tuple(offset),
                                     textcoords="offset points", ha="center", va="center", fontsize=fontsize,
                                     **leader)
    return annotations
