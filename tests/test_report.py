"""The HTML report from a hand-made store: every plot renders as real SVG in a browser, user strings are
escaped, missing studies are said not to have run, and a failed write leaves nothing half-written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import run_cli_main
from test_analysis import (
    Profile,
    mixed_setups,
    records_of,
    sweep_trials,
    tradeoff_trials,
    write_store,
)

from peftbench.errors import PeftbenchError
from peftbench.report import html as report_html
from peftbench.store.db import Store

EVIL = "<script>alert(1)</script>"
EVIL_METHOD = {EVIL: Profile("lora", {"r": 2, "alpha": 4}, 80_000, .86, 180, 1100, 2.0e11, .72, -6.0,
                             12.0, 10.1, 250, 297, 300e3)}
ALL_PLOTS = {"param_vs_accuracy", "time_vs_accuracy", "memory_vs_accuracy", "radar", "pareto",
             "data_efficiency", "rank_sweep"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class PlotCensus(HTMLParser):
    """For each <figure class="plot" id="plot-NAME">: how many <svg> and drawn <path d="..."> it holds."""

    def __init__(self):
        super().__init__()
        self.current: str | None = None
        self.depth = 0
        self.plots: dict[str, dict[str, int]] = {}
        self.script_elements = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.script_elements += 1
        if tag == "figure" and "plot" in (attrs.get("class") or "").split():
            self.current, self.depth = attrs["id"].removeprefix("plot-"), 0
            self.plots[self.current] = {"svg": 0, "path": 0}
        if self.current is None:
            return
        if tag == "figure":
            self.depth += 1
        elif tag == "svg":
            self.plots[self.current]["svg"] += 1
        elif tag == "path" and attrs.get("d", "").strip():
            self.plots[self.current]["path"] += 1

    def handle_endtag(self, tag):
        if self.current is not None and tag == "figure":
            self.depth -= 1
            if self.depth == 0:
                self.current = None


def census(text: str) -> PlotCensus:
    parser = PlotCensus()
    parser.feed(text)
    return parser


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and os.path.exists("/usr/bin/chromium"):
        path = "/usr/bin/chromium"
    if path is None:
        pytest.skip("chromium is not installed (scripts/install.sh --test installs it)")
    return path


def browse(html_file: Path, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess:
    args = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *mode,
            html_file.resolve().as_uri()]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture
def report_store(tmp_path) -> str:
    return write_store(tmp_path / "report.db", tradeoff_trials(EVIL_METHOD) + sweep_trials())


def test_report_renders_every_plot_in_chromium_and_escapes_names(report_store, tmp_path):
    out = tmp_path / "out" / "report.html"
    proc = run_cli_main("report", "--db", report_store, "--output", str(out), check=False)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert {p.stem for p in (tmp_path / "out" / "report_plots").glob("*.png")} == ALL_PLOTS
    for section in ("Results", "Tradeoffs", "Pareto front", "Data efficiency", "LoRA rank sweep",
                    "Recommendations for the five scenarios", "Dimension scores", "Provenance"):
        assert f"<h2>{section}" in text
    for scenario in ("performance-critical", "resource-constrained", "limited-data", "deployment-focused",
                     "balanced"):
        assert f"<h3>{scenario}: " in text
    assert "abc123" in text and "a" * 40 in text  # data split hash and git hash in provenance
    assert "± " in text  # two seeds: mean ± CI

    dom = browse(out, tmp_path, "--dump-dom").stdout
    seen = census(dom)
    assert set(seen.plots) == ALL_PLOTS
    for name, counts in seen.plots.items():
        assert counts["svg"] >= 1 and counts["path"] > 10, (name, counts)
    assert seen.script_elements == 0 and EVIL not in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom

    shot = tmp_path / "report.png"
    browse(out, tmp_path, f"--screenshot={shot}", "--window-size=1280,4000")
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 4000)
        colours = image.convert("L").resize((256, 800)).getextrema()  # text strokes survive at this size
    assert colours[1] - colours[0] > 100  # not a blank page


def test_missing_studies_are_reported_not_run(tmp_path):
    db = write_store(tmp_path / "tradeoff-only.db", tradeoff_trials())
    with Store(db, create=False) as store:
        records = store.records()
    written = report_html.write_report(records, Path(db), tmp_path / "r.html")
    text = written.html.read_text(encoding="utf-8")
    assert "The data-efficiency study was not run" in text and "The rank-sweep study was not run" in text
    assert set(census(text).plots) == ALL_PLOTS - {"data_efficiency", "rank_sweep"}
    assert written.png_count == 5 and len(list(written.png_dir.glob("*.png"))) == 5
    assert "data_efficiency was not measured (no data-efficiency results for these methods)" in text


def test_sweeps_only_store_still_reports(tmp_path):
    db = write_store(tmp_path / "sweeps.db", sweep_trials())
    with Store(db, create=False) as store:
        records = store.records()
    text = report_html.write_report(records, Path(db), tmp_path / "r.html").html.read_text(encoding="utf-8")
    assert "all studies (data-efficiency, rank-sweep)" in text
    assert "train_seconds or accuracy was not measured" in text
    assert {"data_efficiency", "rank_sweep", "pareto", "radar"} <= set(census(text).plots)


def test_failed_write_leaves_previous_report_and_no_temp_files(tmp_path, monkeypatch):
    db = write_store(tmp_path / "s.db", tradeoff_trials())
    with Store(db, create=False) as store:
        records = store.records()
    out = tmp_path / "r.html"
    report_html.write_report(records, Path(db), out)
    before = out.read_bytes(), sorted(p.name for p in (tmp_path / "r_plots").iterdir())

    calls = {"n": 0}
    real_render = report_html.plots.render

    def failing_render(fig):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real_render(fig)

    monkeypatch.setattr(report_html.plots, "render", failing_render)
    with pytest.raises(RuntimeError, match="disk full"):
        report_html.write_report(records, Path(db), out)
    assert (out.read_bytes(), sorted(p.name for p in (tmp_path / "r_plots").iterdir())) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r_plots", "s.db"]

    monkeypatch.setattr(report_html.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("rename failed")))
    monkeypatch.setattr(report_html.plots, "render", real_render)
    with pytest.raises(OSError, match="rename failed"):
        report_html.write_report(records, Path(db), out)
    assert (out.read_bytes(), sorted(p.name for p in (tmp_path / "r_plots").iterdir())) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r_plots", "s.db"]


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    db = write_store(tmp_path / "s.db", tradeoff_trials())
    with Store(db, create=False) as store:
        records = store.records()
    (tmp_path / "r_plots").mkdir()
    (tmp_path / "r_plots" / "notes.txt").write_text("mine")
    with pytest.raises(PeftbenchError, match="did not write"):
        report_html.write_report(records, Path(db), tmp_path / "r.html")
    with pytest.raises(PeftbenchError, match="is a directory"):
        report_html.write_report(records, Path(db), tmp_path)
    assert (tmp_path / "r_plots" / "notes.txt").read_text() == "mine"


def test_report_marks_collapse_and_shows_confidence_intervals_and_setup(tmp_path):
    records = records_of(tradeoff_trials() + sweep_trials()).assign(setup="a1b2", setup_label="MiniLM / embedded")
    ada = records["method"] == "AdaLoRA"
    records["collapse_reason"] = records["collapse_reason"].astype(object)
    records.loc[ada, "collapsed"] = True
    records.loc[ada, "collapse_reason"] = "97% of validation predictions are class 0"
    text = report_html.write_report(records, tmp_path / "s.db", tmp_path / "r.html").html.read_text("utf-8")
    assert "setup MiniLM / embedded - store" in text  # the setup in the header
    assert re.search(r"<td class='t'>AdaLoRA( \*)? \[collapsed\]</td>", text) and "AdaLoRA (seed 0): 97% of validation predictions are class 0" in text
    assert "left out as collapsed" in text  # and out of the scenarios and the Pareto front
    scenarios = text.split("<h2>Recommendations for the five scenarios", 1)[1].split("<h2>", 1)[0]
    assert "AdaLoRA" not in scenarios.split("left out as collapsed", 1)[1].split("</p>", 1)[1]
    assert scenarios.count("Statistically tied with") == 5 and "<th>P(best)</th>" in scenarios
    assert "P(on front)" in text
    results = text.split("<h2>Results", 1)[1].split("<h2>", 1)[0]
    assert "OOD bal acc" in results and "robust drop" in results and "train MB (net)" in results
    assert ">robust<" not in results  # the retired ratio
    assert "min-max" not in text


def test_report_refuses_a_mixed_store_until_a_setup_is_named(tmp_path):
    records = mixed_setups()
    with pytest.raises(PeftbenchError, match="2 setups: a1b2"):
        report_html.write_report(records, tmp_path / "s.db", tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()
    text = report_html.write_report(records, tmp_path / "s.db", tmp_path / "r.html",
                                    setup="c3d4").html.read_text("utf-8")
    assert "setup bert-base / imdb / 3 epochs" in text and "MiniLM-L6" not in text
