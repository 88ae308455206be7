"""One self-contained HTML report of a store: tables, inline SVG plots, recommendations, provenance.

The sections live in report/sections/ (one module each); this module puts them in order on one page and
writes it. Everything is built in memory first and then written atomically (temp file / temp folder, then
rename), so a failure leaves the previous report intact and nothing half-written. Every string that
comes from the store or the user goes through html.escape (report.page.esc).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from peftbench.analysis.recommend import prepare, select_study
from peftbench.analysis.selection import select_records
from peftbench.errors import PeftbenchError
from peftbench.report import plots
from peftbench.report.page import Page
from peftbench.report.sections.data_efficiency import data_efficiency_section
from peftbench.report.sections.forgetting import forgetting_section
from peftbench.report.sections.generation import generation_section
from peftbench.report.sections.overview import overview_section
from peftbench.report.sections.pareto import pareto_section
from peftbench.report.sections.plan import plan_section
from peftbench.report.sections.provenance import provenance_section
from peftbench.report.sections.races import races_section
from peftbench.report.sections.rank_sweep import rank_section
from peftbench.report.sections.results import results_section
from peftbench.report.sections.scenarios import scenarios_section
from peftbench.report.sections.scores import scores_section
from peftbench.report.sections.study_facts import generate_study, measured, metric_name
from peftbench.report.sections.tradeoffs import tradeoff_section

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1180px;
color:#1d2330;padding:0 1rem;line-height:1.45}
h1{font-size:1.7rem;margin-bottom:.2rem}
h2{border-bottom:2px solid #dfe3ea;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #dfe3ea;padding:.25rem .5rem;text-align:right;white-space:nowrap}th{background:#f3f5f9}
td.t,th.t{text-align:left;white-space:normal}.scroll{overflow-x:auto}
.plots{display:flex;flex-wrap:wrap;gap:1rem}
figure.plot{margin:0;border:1px solid #dfe3ea;border-radius:6px;padding:.4rem;background:#fff;
flex:0 1 calc(50% - .5rem);box-sizing:border-box}figure.plot.wide{flex-basis:100%}
figure.plot svg{width:100%;height:auto}figcaption{font-size:.8rem;color:#5b6475}
.muted{color:#5b6475}
.note{background:#fff8e1;border-left:4px solid #f5b400;padding:.3rem .6rem;margin:.4rem 0}
.scenario{border:1px solid #dfe3ea;border-radius:6px;padding:.3rem .9rem;margin:.8rem 0}
.collapsed{color:#b3261e;font-weight:600}
"""


@dataclass(frozen=True)
class WrittenReport:
    html: Path
    png_dir: Path
    png_count: int


def build_page(records: pd.DataFrame, db_path: Path, png_folder: str, study: str | None,
               radar_methods: list[str] | None, interactive: bool = False, races: pd.DataFrame | None = None,
               **selection) -> Page:
    """selection: setup, model, dataset, include_collapsed (see analysis.recommend.prepare); races: the
    store's race decisions (store.races.races_frame), shown after the scenarios."""
    page = Page(png_folder)
    include = selection.pop("include_collapsed", False)
    records = select_records(records, include_collapsed=True, **selection).records  # one setup, all trials
    prep = prepare(records, study, include_collapsed=include)
    selected, label, dims = prep.selected, prep.label, prep.dims
    colors = plots.method_colors(list(dict.fromkeys(records["method"])))
    overview_section(page, records, db_path, prep)
    results_section(page, records)
    tradeoff_section(page, selected, label, dims, colors, radar_methods, prep)
    study_rows = select_study(records, study)[0]  # collapsed trials kept, and marked
    if interactive:  # Plotly views after the static plots they mirror (report/interactive.py)
        from peftbench.report.interactive import interactive_section

        page.add(interactive_section(study_rows, label, colors))
    if generate_study(study_rows):
        generation_section(page, study_rows, label, colors)
    elif measured(study_rows, "forgetting"):  # a decoder classifier: forgetting only; encoders: nothing
        forgetting_section(page, study_rows, label, colors)
    pareto_section(page, dims.means, colors, prep, metric_name(selected))
    data_efficiency_section(page, prep.records, colors)
    rank_section(page, prep.records)
    scenarios_section(page, prep)
    if races is not None and not races.empty:
        races_section(page, races[races["study"].isin(set(selected["study"]))])
    scores_section(page, dims)
    plan_section(page, records)
    provenance_section(page, records)
    return page


def write_report(records: pd.DataFrame, db_path: Path, output: Path, study: str | None = None,
                 radar_methods: list[str] | None = None, interactive: bool = False,
                 races: pd.DataFrame | None = None, **selection) -> WrittenReport:
    """Write `output` and `<stem>_plots/*.png` beside it, replacing an earlier report atomically.
    selection: setup, model, dataset, include_collapsed; races: the store's race decisions, if any."""
    if records.empty:
        raise PeftbenchError(f"no finished trials in {db_path}")
    output = Path(output)
    if output.is_dir():
        raise PeftbenchError(f"--output {output} is a directory; give a file name such as report.html")
    png_dir = output.with_name(output.stem + "_plots")
    if png_dir.exists() and (not png_dir.is_dir() or any(p.suffix != ".png" for p in png_dir.iterdir())):
        raise PeftbenchError(f"{png_dir} exists and holds files peftbench did not write; move it or pick "
                             "another --output")
    page = build_page(records, db_path, png_dir.name, study, radar_methods, interactive, races, **selection)
    document = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>peftbench report</title>"
                f"<style>{CSS}</style></head><body>" + "\n".join(page.parts) + "</body></html>")
    output.parent.mkdir(parents=True, exist_ok=True)
    _replace_atomically(output, document, png_dir, page.pngs)
    return WrittenReport(output, png_dir, len(page.pngs))


def _replace_atomically(output: Path, document: str, png_dir: Path, pngs: dict[str, bytes]) -> None:
    """Write both into temp names in the same folder, then rename; on failure restore what was there."""
    fd, tmp_html = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{png_dir.name}.", dir=output.parent))
    old_dir = png_dir.with_name(f".{png_dir.name}.old-{os.getpid()}")
    moved_old = moved_new = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(document)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_html, 0o666 & ~umask)  # temp files are private; the report should not be
        os.chmod(tmp_dir, 0o777 & ~umask)
        for name, data in pngs.items():
            (tmp_dir / f"{name}.png").write_bytes(data)
        if png_dir.exists():
            png_dir.rename(old_dir)
            moved_old = True
        tmp_dir.rename(png_dir)
        moved_new = True
        os.replace(tmp_html, output)
    except BaseException:
        shutil.rmtree(png_dir if moved_new else tmp_dir, ignore_errors=True)
        if moved_old:
            old_dir.rename(png_dir)
        Path(tmp_html).unlink(missing_ok=True)
        raise
    shutil.rmtree(old_dir, ignore_errors=True)
