"""The interactive report (`peftbench report --interactive`) in headless Chromium, offline.

The test opens a copy of the written report with two additions: a Content-Security-Policy that forbids
every network origin (and a listener recording each blocked attempt), and a probe script that acts as a
reader would (moves the mouse over points, opens the y-axis dropdown, clicks a legend entry) and writes
what the page then shows into a <pre>. Chromium's --dump-dom prints the page after its virtual clock has
run, so no driver or extra package is needed.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli_main
from test_analysis import Profile, tradeoff_trials, write_store
from test_report import browse

from peftbench.analysis.pareto import Objective, pareto_table
from peftbench.errors import PeftbenchError
from peftbench.report import html as report_html
from peftbench.report import interactive
from peftbench.report.tables import summary_frame
from peftbench.store.db import Store

EVIL = "<script>alert(1)</script>"
EVIL_METHOD = {EVIL: Profile("lora", {"r": 2, "alpha": 4}, 80_000, .86, 180, 1100, 2.0e11, .72, -6.0,
                             12.0, 10.1, 250, 297, 300e3)}
COLLAPSED = "PrefixTuning-len32"
REASON = "97% of validation predictions are class 0"
ONE_SEED = "BitFit"
CSP = ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
       "script-src 'unsafe-inline'; style-src 'unsafe-inline'\"><script>window.__blocked=[];"
       "document.addEventListener('securitypolicyviolation',function(e){"
       "window.__blocked.push(e.blockedURI+' '+e.violatedDirective)});</script>")
PROBE = """
(async function(){
  const ask = ASK, out = {errors: [], hover: {}};
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const click = (el, type) => { const b = el.getBoundingClientRect();
    el.dispatchEvent(new MouseEvent(type, {clientX: b.left + b.width / 2, clientY: b.top + b.height / 2,
                                           bubbles: true, button: 0, buttons: 1})); };
  const front = () => JSON.parse(document.getElementById('pareto-explorer-front').getAttribute('data-front'));
  try {
    await sleep(500);
    out.plots = {};
    document.querySelectorAll('div.iplot').forEach(d => { out.plots[d.id] = {
      svg: d.querySelectorAll('svg.main-svg').length,
      points: d.querySelectorAll('.scatterlayer .point').length}; });
    const gd = document.getElementById('iplot-pareto_explorer');
    const index = name => gd.data.findIndex(t => t.name === name);
    for (const name of ask.hover) {
      const point = gd.querySelectorAll('.scatterlayer .trace')[index(name)].querySelector('.point');
      const b = point.getBoundingClientRect();
      gd.querySelector('.nsewdrag').dispatchEvent(new MouseEvent('mousemove', {
        clientX: b.left + b.width / 2, clientY: b.top + b.height / 2, bubbles: true}));
      await sleep(300);
      const labels = gd.querySelectorAll('.hoverlayer .hovertext');
      out.hover[name] = Array.from(labels).map(n => n.textContent).join('|');
    }
    out.front_start = front();
    click(gd.querySelectorAll('.updatemenu-header')[1], 'click');
    await sleep(300);
    const buttons = Array.from(gd.querySelectorAll('.updatemenu-dropdown-button'));
    const button = buttons.find(b => b.textContent === ask.y);
    click(button, 'click');
    await sleep(800);
    out.y_title = gd.layout.yaxis.title.text;
    out.front_y = front();
    const toggle = gd.querySelectorAll('.legend .traces')[index(ask.hide)].querySelector('.legendtoggle');
    click(toggle, 'mousedown');
    click(toggle, 'mouseup');
    await sleep(1500);
    const shown = plot => plot.data.map(t => t.visible === undefined ? true : t.visible);
    out.visible = shown(gd);
    out.visible_elsewhere = shown(document.getElementById('iplot-time_vs_accuracy'));
    out.names = gd.data.map(t => t.name);
    out.front_hidden = front();
  } catch (e) { out.errors.push(String(e && e.stack || e)); }
  out.blocked = window.__blocked;
  out.resources = performance.getEntriesByType('resource').map(e => e.name);
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
"""


def trials() -> list[tuple[dict, dict]]:
    """The analysis tests' tradeoff study, plus a collapsed method, a one-seed method and net memory."""
    out = []
    for spec, record in tradeoff_trials(EVIL_METHOD):
        if record["method"] == ONE_SEED and record["seed"] == 1:
            continue
        record["collapsed"] = record["method"] == COLLAPSED
        record["collapse_reason"] = REASON if record["collapsed"] else None
        record["peak_rss_net_mb"] = record["peak_rss_mb"] - 400
        out.append((spec, record))
    return out


def offline_probe(report: Path, tmp_path: Path, ask: dict) -> dict:
    """Open `report` under a no-network policy with the probe; return what the probe saw."""
    text = report.read_text(encoding="utf-8")
    probed = text.replace("<meta charset='utf-8'>", "<meta charset='utf-8'>" + CSP, 1)
    probed = probed.replace("</body>", f"<script>{PROBE.replace('ASK', json.dumps(ask))}</script></body>")
    page = tmp_path / "probed.html"
    page.write_text(probed, encoding="utf-8")
    dom = browse(page, tmp_path, "--dump-dom", "--virtual-time-budget=20000",
                 "--window-size=1280,1600").stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL)
    assert found, dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


def expected_front(records: pd.DataFrame, x: str, y: str, hidden: str | None = None) -> list[str]:
    means = records.groupby("method", sort=False)[[x, y]].mean()
    y_goal = "max" if interactive.higher_is_better(y) else "min"
    shown = means.drop(index=hidden) if hidden else means
    table = pareto_table(shown, [Objective(x, "min"), Objective(y, y_goal)])
    return sorted(table.index[table["on_front"]])


def interval_of(records: pd.DataFrame, method: str) -> str:
    """What hover must say about the accuracy interval: summary_frame's, else none for one seed."""
    row = summary_frame(records).set_index("method").loc[method]
    low, high = row.get("accuracy_ci_low"), row.get("accuracy_ci_high")
    if low is None or pd.isna(low):
        return "no interval (1 seed)"
    return f"[{low:.4g}, {high:.4g}] 95% CI"


@pytest.fixture
def store(tmp_path) -> str:
    return write_store(tmp_path / "interactive.db", trials())


def test_interactive_report_hover_legend_and_pareto_axes_work_offline(store, tmp_path):
    out = tmp_path / "out" / "report.html"
    proc = run_cli_main("report", "--db", store, "--output", str(out), "--interactive", check=False)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    assert text.count("* plotly.js v") == 1  # inlined once
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=|<link[^>]*\shref=", text, re.IGNORECASE)
    assert EVIL not in text
    with Store(store, create=False) as opened:
        records = opened.records()
    methods = list(dict.fromkeys(records["method"]))

    seen = offline_probe(out, tmp_path, {"hover": ["LoRA-r8", COLLAPSED, ONE_SEED], "y": "latency_p50_ms",
                                         "hide": ONE_SEED})
    assert seen["errors"] == []
    assert set(seen["plots"]) == {f"iplot-{name}" for name in ("param_vs_accuracy", "time_vs_accuracy",
                                                               "memory_vs_accuracy", "pareto_explorer")}
    for name, counts in seen["plots"].items():
        front_points = len(seen["front_start"]) if name == "iplot-pareto_explorer" else 0
        assert counts["svg"] >= 1 and counts["points"] == len(methods) + front_points, (name, counts)

    lora = seen["hover"]["LoRA-r8"]
    assert lora.startswith("LoRA-r8") and "r=8" in lora and "learning rate: 0.002" in lora
    assert "seeds: 2 (0, 1)" in lora and lora.endswith("trainable_params: 150,000")
    assert interval_of(records, "LoRA-r8") in lora and "COLLAPSED" not in lora
    assert f"COLLAPSED in 2 of 2 trials: {REASON}" in seen["hover"][COLLAPSED]
    assert "seeds: 1 (0)" in seen["hover"][ONE_SEED]
    assert interval_of(records, ONE_SEED) in seen["hover"][ONE_SEED]

    assert sorted(seen["front_start"]) == expected_front(records, "trainable_params", "accuracy")
    assert seen["y_title"].startswith("latency_p50_ms (lower is better)")
    assert sorted(seen["front_y"]) != sorted(seen["front_start"])
    assert sorted(seen["front_y"]) == expected_front(records, "trainable_params", "latency_p50_ms")
    hidden = seen["names"].index(ONE_SEED)
    assert seen["visible"][hidden] == "legendonly"
    assert [v for i, v in enumerate(seen["visible"]) if i != hidden] == [True] * (len(seen["visible"]) - 1)
    front_without = expected_front(records, "trainable_params", "latency_p50_ms", ONE_SEED)
    assert sorted(seen["front_hidden"]) == front_without != sorted(seen["front_y"])  # follows the legend
    assert seen["visible_elsewhere"] == seen["visible"][:-1]  # one legend for every plot
    assert html.escape(EVIL) in seen["names"]  # shown as text, never run as markup

    assert seen["blocked"] == [] and seen["resources"] == []  # nothing asked for the network


def test_the_offline_check_sees_a_network_request(tmp_path):
    """The probe's network check is not vacuous: a page that fetches an image is caught."""
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
                    "<div class='iplot' id='iplot-pareto_explorer'></div>"
                    "<img src='http://example.invalid/x.png'></body></html>", encoding="utf-8")
    seen = offline_probe(page, tmp_path, {"hover": [], "y": "accuracy", "hide": "x"})
    assert any(b.startswith("http://example.invalid/x.png") for b in seen["blocked"])


def test_static_report_stays_the_default(store, tmp_path):
    with Store(store, create=False) as opened:
        records = opened.records()
    static = report_html.write_report(records, Path(store), tmp_path / "static.html").html
    rich = report_html.write_report(records, Path(store), tmp_path / "rich.html", interactive=True).html
    assert "<script" not in static.read_text(encoding="utf-8")
    assert "Interactive views" in rich.read_text(encoding="utf-8")
    assert rich.stat().st_size > 5_000_000 > static.stat().st_size  # why it is an option, not the default


def test_intervals_come_from_summary_frame_when_it_gives_them(monkeypatch):
    records = pd.DataFrame([r for _, r in trials()])
    table = interactive.configurations(records, ["accuracy", "train_seconds"])
    bitfit = table[table["method"] == ONE_SEED].iloc[0]
    assert bitfit["seeds"] == 1
    assert "no interval (1 seed)" in interactive._hover_lines(bitfit, "train_seconds")

    def with_binomial(frame):  # as the statistics work adds: an accuracy interval even for one seed
        agg = summary_frame(frame)
        agg["accuracy_ci_low"] = agg["accuracy_mean"] - .03
        agg["accuracy_ci_high"] = agg["accuracy_mean"] + .03
        return agg

    monkeypatch.setattr(interactive, "summary_frame", with_binomial)
    table = interactive.configurations(records, ["accuracy"])
    bitfit = table[table["method"] == ONE_SEED].iloc[0]
    assert bitfit["accuracy_lo"] == pytest.approx(0.846 - 0.03)
    assert "accuracy: 0.846 [0.816, 0.876] 95% CI" in interactive._hover_lines(bitfit, "accuracy")


def test_axis_fields_are_measurements_with_directions():
    records = pd.DataFrame([r for _, r in trials()])
    fields = interactive.axis_fields(records)
    assert fields[:3] == ["accuracy", "f1", "trainable_params"]
    assert {"seed", "train_size", "base_params", "collapsed", "can_merge", "lora_r"}.isdisjoint(fields)
    assert {"peak_rss_net_mb", "latency_p50_ms", "ood_accuracy"} <= set(fields)
    better = interactive.higher_is_better
    assert better("ood_balanced_accuracy") and better("robustness_drop") and better("throughput_per_s")
    assert not better("peak_rss_net_mb") and not better("val_loss") and not better("latency_p50_ms")


def test_a_missing_plotly_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly.offline", None)  # import plotly.offline now raises ImportError
    with pytest.raises(PeftbenchError, match="needs plotly: pip install plotly"):
        interactive.plotly_js()
