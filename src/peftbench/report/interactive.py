"""Interactive (Plotly) views of the tradeoffs, inside the same self-contained HTML report.

The static SVG/PNG plots stay: they are what papers and the README use. These views add what a static
plot cannot: hover to see which configuration sits behind a point (options, learning rate, seeds, the
interval of the y metric, a collapse mark), a legend that hides and shows methods, and a Pareto view whose
two axes the reader picks from every measured numeric field.

plotly.js is inlined once (about 4.8 MB), so the file works offline and never fetches anything. Figures
are built here as plain dicts (plotly.py is used only for its bundled plotly.js). The Pareto front of the
chosen pair is computed in the browser (see FRONT_JS): with ~40 measured fields there are over a thousand
pairs, and the front must also follow the methods the reader hides.
"""

from __future__ import annotations

import html
import json
import math
import re

import numpy as np
import pandas as pd

from peftbench.errors import PeftbenchError
from peftbench.report.tables import summary_frame
from peftbench.stats.summary import summarize

KEYS = ["study", "method", "train_size"]  # one point per configuration, as in the results tables
NOT_AXES = {  # numeric record fields that are settings or diagnostics, not measurements to trade off
    "seed", "train_size", "epochs", "batch_size", "learning_rate", "base_params", "lora_r", "lora_alpha",
    "eval_size", "test_size", "perturbation_rows", "threads", "attempts", "record_version", "load_avg_start",
    "load_avg_end", "cpu_utilisation", "val_majority_rate", "baseline_rss_mb", "n_labels", "num_labels",
}
PREFERRED = ["accuracy", "f1", "trainable_params", "trainable_pct", "train_seconds", "peak_rss_net_mb",
             "peak_cuda_allocated_mb", "latency_p50_ms", "merged_latency_p50_ms", "throughput_per_s",
             "ood_balanced_accuracy", "ood_accuracy", "robustness_drop", "adapter_bytes", "flops_per_step",
             "val_accuracy", "val_f1"]
# decoders: exact match, its gain over the zero-shot floor, decode and training tokens/s
HIGHER_IS_BETTER = re.compile(r"accuracy|f1|precision|recall|throughput|samples_per_s|auc|robustness|"
                              r"exact_match|gain_over|tokens_per_s")
LOG_SCALE = re.compile(r"params|bytes|flops|trainable_pct")
MEMORY_FIELDS = ["peak_cuda_allocated_mb", "peak_rss_net_mb", "peak_rss_mb"]  # first measured is plotted
HOVER = "%{text}<br>%{customdata}<extra></extra>"  # text: the y lines; customdata: the x line
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["sendDataToCloud"]}


def axis_fields(records: pd.DataFrame) -> list[str]:
    """The measured numeric fields a reader may put on an axis: the common ones first, then the rest A-Z."""
    numeric = []
    for column in records.columns:
        if column in NOT_AXES or records[column].dtype == bool:
            continue
        values = records[column].dropna()
        if len(values) and all(isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
                               for v in values):
            numeric.append(column)
    return [f for f in PREFERRED if f in numeric] + sorted(f for f in numeric if f not in PREFERRED)


def higher_is_better(field: str) -> bool:
    return bool(HIGHER_IS_BETTER.search(field))


def _method_details(method: str, records: pd.DataFrame) -> tuple[str, str]:
    """(options text, learning-rate text) for a method: from the records when they carry them, else
    from the method registry, which resolves preset names and `family:key=value` strings."""
    options, lr = None, None
    for column in ("method_options", "options"):
        given = records[column].dropna() if column in records else pd.Series(dtype=object)
        if len(given) and isinstance(given.iloc[0], dict):
            options = given.iloc[0]
            break
    if "learning_rate" in records:
        rates = pd.to_numeric(records["learning_rate"], errors="coerce").dropna().unique()
        lr = ", ".join(f"{r:g}" for r in sorted(rates)) or None
    if options is None or lr is None:
        spec = _parsed(method)
        if spec is not None:
            options = spec.options if options is None else options
            default = spec.learning_rate == _family_default_lr(spec.family)
            lr = lr or f"{spec.learning_rate:g}" + (" (family default)" if default else "")
    if options is None:
        return "?", lr or "?"
    return ", ".join(f"{k}={v}" for k, v in options.items()) or "none", lr or "?"


def _parsed(method: str):
    """The MethodSpec a method name stands for; None for a name this version does not know (shown as ?)."""
    from peftbench.methods import parse_method

    try:
        return parse_method(method)
    except PeftbenchError:
        return None


def _family_default_lr(name: str) -> float | None:
    from peftbench.methods import FAMILIES

    return FAMILIES[name].default_lr if name in FAMILIES else None


def _number(value: float) -> str:
    """Counts in full with separators (22,713,986), other values to four significant digits."""
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def _interval_text(field: str, mean: float, low: float, high: float, seeds: int,
                   say_none: bool = True) -> str:
    if mean is None or math.isnan(mean):
        return f"{field}: not measured"
    text = f"{field}: {_number(mean)}"
    if low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        if low == high:  # a count every seed gives alike (parameters, bytes): no spread to show
            return text + (f" (same in all {seeds} seeds)" if say_none else "")
        # one seed: only figures from per-row predictions have an interval, and it holds row noise only
        rows_only = " (rows only, 1 seed)" if seeds <= 1 else ""
        return text + f" [{_number(low)}, {_number(high)}] 95% CI{rows_only}"
    if not say_none:
        return text
    return text + (" - no interval (1 seed)" if seeds <= 1 else " - no interval")


def configurations(records: pd.DataFrame, fields: list[str]) -> pd.DataFrame:
    """One row per configuration: for each field its mean and 95% interval, plus what hover shows.

    Intervals come from peftbench.tables.summary_frame where it gives them (it may give accuracy and F1
    an interval even for one seed); other fields get the t-interval over seeds, none for one seed."""
    keys = [k for k in KEYS if k in records]
    agg = summary_frame(records)
    rows = []
    for key, grp in records.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        match = agg
        for k in keys:
            match = match[match[k] == row[k]] if k in match else match
        given = match.iloc[0] if len(match) else pd.Series(dtype=object)
        seeds = sorted(grp["seed"].dropna().unique()) if "seed" in grp else []
        row["seeds"], row["seed_list"] = len(seeds) or len(grp), ", ".join(str(s) for s in seeds)
        for field in fields:
            s = summarize(pd.to_numeric(grp[field], errors="coerce").tolist())
            low, high = s.ci_low, s.ci_high
            g_low, g_high = given.get(f"{field}_ci_low"), given.get(f"{field}_ci_high")
            if g_low is not None and g_high is not None and not (pd.isna(g_low) or pd.isna(g_high)):
                low, high = float(g_low), float(g_high)
            row[field], row[f"{field}_lo"], row[f"{field}_hi"] = s.mean, low, high
        names = grp["method_name"].dropna() if "method_name" in grp else pd.Series(dtype=object)
        # a configuration's label (`LoRA-r8 (tuned)`) is not a method string: look up its own name
        row["options"], row["lr"] = _method_details(str(names.iloc[0] if len(names) else row["method"]), grp)
        row["collapse"] = _collapse_text(grp)
        rows.append(row)
    return pd.DataFrame(rows)


def _collapse_text(grp: pd.DataFrame) -> str:
    if "collapsed" not in grp:
        return ""
    flags = grp["collapsed"].map(lambda v: bool(v) if v is not None and not pd.isna(v) else False)
    if not flags.any():
        return ""
    reasons = []
    if "collapse_reason" in grp:
        reasons = list(dict.fromkeys(str(r) for r in grp.loc[flags, "collapse_reason"].dropna()))
    because = ": " + "; ".join(reasons) if reasons else ""
    return f"COLLAPSED in {int(flags.sum())} of {len(grp)} trials{because}"


def _hover_lines(row: pd.Series, y: str) -> str:
    """Hover text (Plotly's HTML subset; every value escaped) for one point, with the interval of `y`."""
    lines = [f"<b>{html.escape(str(row['method']))}</b>",
             f"study: {html.escape(str(row.get('study', '?')))}, train n {row.get('train_size', '?')}",
             f"options: {html.escape(row['options'])}",
             f"learning rate: {html.escape(row['lr'])}",
             f"seeds: {row['seeds']} ({html.escape(row['seed_list'])})",
             html.escape(_interval_text(y, row[y], row[f"{y}_lo"], row[f"{y}_hi"], row["seeds"]))]
    if row["collapse"]:
        lines.append(f"<b>{html.escape(row['collapse'])}</b>")
    return "<br>".join(lines)


def _clean(values) -> list:
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]


def _errors(rows: pd.DataFrame, field: str) -> dict:
    mean, lo, hi = (rows[c].astype(float) for c in (field, f"{field}_lo", f"{field}_hi"))
    return {"type": "data", "symmetric": False, "array": _clean(hi - mean), "arrayminus": _clean(mean - lo),
            "visible": bool((hi - lo).notna().any()), "thickness": 1.2, "width": 3}


def _color(rgba) -> str:
    if isinstance(rgba, str):
        return rgba
    r, g, b = (round(255 * c) for c in rgba[:3])
    return f"rgb({r},{g},{b})"


def _axis_title(field: str) -> str:
    return f"{field} ({'higher' if higher_is_better(field) else 'lower'} is better)"


def _axis_type(table: pd.DataFrame, field: str) -> str:
    values = table[field].dropna()
    return "log" if LOG_SCALE.search(field) and len(values) and bool((values > 0).all()) else "linear"


def _x_lines(rows: pd.DataFrame, x: str) -> list[str]:
    """The x value of each point for hover (with its interval when there is one)."""
    return [html.escape(_interval_text(x, r[x], r[f"{x}_lo"], r[f"{x}_hi"], r["seeds"], say_none=False))
            for _, r in rows.iterrows()]


def _traces(table: pd.DataFrame, x: str, y: str, colors: dict) -> list[dict]:
    traces = []
    for method, rows in table.groupby("method", sort=False):
        traces.append({
            "type": "scatter", "mode": "markers", "name": html.escape(str(method)),
            "x": _clean(rows[x]), "y": _clean(rows[y]),
            "error_x": _errors(rows, x), "error_y": _errors(rows, y),
            "text": [_hover_lines(r, y) for _, r in rows.iterrows()],
            "customdata": _x_lines(rows, x), "hovertemplate": HOVER,
            "marker": {"size": 12, "color": _color(colors.get(method, (0.3, 0.3, 0.3))),
                       "line": {"width": [3 if c else 0.5 for c in rows["collapse"]], "color": "#222"},
                       "symbol": ["x" if c else "circle" for c in rows["collapse"]]},
        })
    return traces


def _layout(title: str, x: str, y: str, table: pd.DataFrame, height: int = 420) -> dict:
    return {"title": {"text": html.escape(title), "x": 0.01, "xanchor": "left"}, "height": height,
            "hovermode": "closest", "margin": {"l": 60, "r": 10, "t": 50, "b": 50},
            "legend": {"itemclick": "toggle"},
            "xaxis": {"title": {"text": _axis_title(x)}, "type": _axis_type(table, x)},
            "yaxis": {"title": {"text": _axis_title(y)}, "type": _axis_type(table, y)}}


def _tradeoff_figures(table: pd.DataFrame, colors: dict) -> list[tuple[str, dict]]:
    memory = next((f for f in MEMORY_FIELDS if f in table and table[f].notna().any()), None)
    wanted = [("param_vs_accuracy", "Parameter efficiency vs performance", "trainable_pct"),
              ("time_vs_accuracy", "Training time vs performance", "train_seconds"),
              ("memory_vs_accuracy", "Peak training memory vs performance", memory)]
    figures = []
    for name, title, x in wanted:
        if x is None or x not in table or not table[x].notna().any() or not table["accuracy"].notna().any():
            continue
        figures.append((name, {"data": _traces(table, x, "accuracy", colors),
                               "layout": _layout(title, x, "accuracy", table)}))
    return figures


def _explorer_figure(table: pd.DataFrame, fields: list[str], colors: dict) -> dict:
    """The Pareto view: dropdowns restyle x and y from precomputed columns; the front trace is last."""
    x0 = next((f for f in ("trainable_params", "trainable_pct") if f in fields), fields[0])
    y0 = "accuracy" if "accuracy" in fields else next(f for f in fields if f != x0)
    methods = list(dict.fromkeys(table["method"]))
    per_method = {m: table[table["method"] == m] for m in methods}
    traces = _traces(table, x0, y0, colors)
    traces.append({"type": "scatter", "mode": "lines+markers", "name": "Pareto front", "x": [], "y": [],
                   "text": [], "hoverinfo": "skip", "line": {"dash": "dot", "color": "#222", "width": 1.5},
                   "marker": {"size": 20, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "#222"}}})
    methods_idx = list(range(len(methods)))

    def button(field: str, axis: str) -> dict:
        col = {m: per_method[m] for m in methods}
        data = {axis: [_clean(col[m][field]) for m in methods],
                f"error_{axis}": [_errors(col[m], field) for m in methods]}
        if axis == "y":
            data["text"] = [[_hover_lines(r, field) for _, r in col[m].iterrows()] for m in methods]
        else:
            data["customdata"] = [_x_lines(col[m], field) for m in methods]
        layout = {f"{axis}axis.title.text": _axis_title(field), f"{axis}axis.type": _axis_type(table, field),
                  f"{axis}axis.autorange": True}
        return {"label": html.escape(field), "method": "update", "args": [data, layout, methods_idx]}

    menus = [{"buttons": [button(f, axis) for f in fields], "active": fields.index(start),
              "x": pos, "y": 1.18, "xanchor": "left", "yanchor": "top", "direction": "down",
              "showactive": True, "name": axis}
             for axis, start, pos in (("x", x0, 0.06), ("y", y0, 0.52))]
    layout = _layout("", x0, y0, table, height=560)
    layout.update(updatemenus=menus, margin={"l": 60, "r": 10, "t": 90, "b": 50},
                  annotations=[{"text": "x:", "x": 0.05, "xref": "paper", "y": 1.16, "yref": "paper",
                                "showarrow": False, "xanchor": "right"},
                               {"text": "y:", "x": 0.51, "xref": "paper", "y": 1.16, "yref": "paper",
                                "showarrow": False, "xanchor": "right"}])
    return {"data": traces, "layout": layout}


FRONT_JS = """
(function(){
  var fields = __FIELDS__, higher = __HIGHER__;
  var gd = document.getElementById('iplot-pareto_explorer');
  function better(a, b, up){ return up ? a > b : a < b; }
  function front(){
    var menus = gd.layout.updatemenus, xf = fields[menus[0].active], yf = fields[menus[1].active];
    var last = gd.data.length - 1, pts = [];
    for (var t = 0; t < last; t++) {
      var tr = gd.data[t];
      if (tr.visible === 'legendonly' || tr.visible === false) continue;
      for (var i = 0; i < tr.x.length; i++) {
        if (isFinite(tr.x[i]) && isFinite(tr.y[i]) && tr.x[i] !== null && tr.y[i] !== null)
          pts.push({x: tr.x[i], y: tr.y[i], name: tr.name});
      }
    }
    var on = pts.filter(function(p){
      return !pts.some(function(q){
        var bx = better(q.x, p.x, higher[xf]), by = better(q.y, p.y, higher[yf]);
        return (bx || q.x === p.x) && (by || q.y === p.y) && (bx || by);
      });
    }).sort(function(a, b){ return a.x - b.x; });
    Plotly.restyle(gd, {x: [on.map(function(p){ return p.x; })], y: [on.map(function(p){ return p.y; })],
                        text: [on.map(function(p){ return p.name; })]}, [last]);
    var names = on.map(function(p){
      var d = document.createElement('textarea'); d.innerHTML = p.name; return d.value; });
    var note = document.getElementById('pareto-explorer-front');
    note.textContent = 'On the front of ' + xf + ' (' + (higher[xf] ? 'max' : 'min') + ') vs ' + yf + ' (' +
      (higher[yf] ? 'max' : 'min') + '): ' + (names.length ? names.join(', ') : 'nothing measured on both');
    note.setAttribute('data-front', JSON.stringify(names));
  }
  gd.on('plotly_update', front);
  gd.on('plotly_restyle', function(ev){ if (ev && ev[0] && 'visible' in ev[0]) front(); });
  front();
  // One legend for all: hiding a method in any plot hides it in the others (idempotent, so no loop).
  var plots = Array.prototype.slice.call(document.querySelectorAll('div.iplot'));
  plots.forEach(function(src){
    src.on('plotly_restyle', function(ev){
      if (!(ev && ev[0] && 'visible' in ev[0])) return;
      var shown = {};
      src.data.forEach(function(t){ shown[t.name] = t.visible === undefined ? true : t.visible; });
      plots.forEach(function(dst){
        if (dst === src) return;
        var idx = [], vis = [];
        dst.data.forEach(function(t, i){
          var now = t.visible === undefined ? true : t.visible;
          if (t.name in shown && t.name !== 'Pareto front' && now !== shown[t.name]) {
            idx.push(i); vis.push(shown[t.name]);
          }
        });
        if (idx.length) Plotly.restyle(dst, {visible: vis}, idx);
      });
    });
  });
})();
"""


def _json(value) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' can end the element or start a comment."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def plotly_js() -> str:
    """plotly.js as bundled by plotly.py (a core dependency; the error is for a broken install)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise PeftbenchError("the interactive report needs plotly: pip install plotly") from None
    return get_plotlyjs()


def interactive_section(records: pd.DataFrame, label: str, colors: dict | None = None) -> str:
    """The report section: plotly.js once, then one div per figure and one script that draws them."""
    fields = axis_fields(records)
    head = f"<h2>Interactive views <span class='muted'>({html.escape(label)})</span></h2>"
    if "method" not in records or len(fields) < 2:
        return head + "<p class='note'>Fewer than two measured numeric fields: nothing to explore.</p>"
    if colors is None:
        from peftbench.report.plots import method_colors

        colors = method_colors(list(dict.fromkeys(records["method"])))
    table = configurations(records, fields)
    figures = _tradeoff_figures(table, colors) if "accuracy" in fields else []
    figures.append(("pareto_explorer", _explorer_figure(table, fields, colors)))
    divs = "".join(f"<div class='iplot' id='iplot-{name}'></div>" for name, _ in figures[:-1])
    draw = "".join(f"Plotly.newPlot('iplot-{name}',{_json(fig['data'])},{_json(fig['layout'])},"
                   f"{_json(CONFIG)});" for name, fig in figures)
    front = FRONT_JS.replace("__FIELDS__", _json(fields)).replace(
        "__HIGHER__", _json({f: higher_is_better(f) for f in fields}))
    style = ("<style>.iplots{display:flex;flex-wrap:wrap;gap:1rem}.iplot{flex:0 1 calc(50% - .5rem);"
             "border:1px solid #dfe3ea;border-radius:6px;box-sizing:border-box;min-width:0}"
             ".iplot.wide{flex-basis:100%}</style>")
    intro = ("<p class='muted'>Hover a point for its configuration and the 95% interval of the y metric; "
             "click a legend entry to hide or show a method in every plot; in the Pareto view pick any two "
             "measured fields. Points marked x collapsed to one class. Error bars: 95% intervals where they "
             "exist.</p>")
    explorer = ("<h3>Pareto view: pick the two axes</h3><p class='muted'>The front (ringed, dotted) is "
                "recomputed for the chosen pair and the methods shown; each axis's direction is in its "
                "title.</p>"
                "<div class='iplot wide' id='iplot-pareto_explorer'></div><p id='pareto-explorer-front'></p>")
    return (head + style + intro + f"<script>{plotly_js()}</script>" + f"<div class='iplots'>{divs}</div>"
            + explorer + f"<script>{draw}{front}</script>")
