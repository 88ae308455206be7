"""The HTML report of decoder studies, from a real tiny store: a --task generate setup (LoRA-r8, IA3) and a
decoder --task classify setup in one database, run once per module through the CLI on a tiny random Llama.

Labels carry HTML (`<em>good</em>`, `bad & sad`), so the references the sample table shows must be escaped.
The tiny model learns nothing in three steps (its trials are marked collapsed), hence --include-collapsed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import make_rows, run_cli_main, write_csv
from test_analysis import tradeoff_trials, write_store
from test_report import census

from peftbench.errors import PeftbenchError
from peftbench.report import html as report_html
from peftbench.report.interactive import higher_is_better
from peftbench.store.db import Store

EVIL_LABELS = ("<em>good</em>", "bad & sad")
# decoder-quick for its 5 latency (TTFT) repeats; every size it sets is given here
RUN = ["--preset", "decoder-quick", "--no-ood", "--train-size", "48", "--epochs", "1", "--batch-size", "16",
       "--validation-size", "40", "--test-size", "40", "--max-length", "40"]
GENERATION_PLOTS = {"generation_exact_match", "forgetting"}


@pytest.fixture(scope="module")
def decoder_store(tiny_llama, tmp_path_factory) -> dict:
    """db path, each run's stdout, and per task: the setup key and the records (one CLI run per task, the
    CLI's main() in this process; the generate one also asks for BitFit, which the bias-free Llama refuses
    without stopping the study)."""
    tmp = tmp_path_factory.mktemp("report-generate")
    data = write_csv(tmp / "evil.csv", make_rows(600, labels=EVIL_LABELS))
    db = tmp / "decoders.db"
    stdout = {}
    for task, methods in (("generate", "LoRA-r8,IA3,BitFit"), ("classify", "LoRA-r8")):
        proc = run_cli_main("run", "--model", tiny_llama, "--task", task, "--dataset", str(data), "--methods",
                    methods, *RUN, "--db", str(db), check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        stdout[task] = proc.stdout
    with Store(str(db), create=False) as store:
        records = store.records()
    by_task = {task: grp for task, grp in records.groupby("task")}
    assert set(by_task) == {"generate", "classify"}
    return {"db": db, "tmp": tmp, "records": records, "stdout": stdout,
            **{task: (str(grp["setup"].iloc[0]), grp) for task, grp in by_task.items()}}


def test_cli_generate_study_prints_exact_match_and_the_floor(decoder_store):
    flat = " ".join(decoder_store["stdout"]["generate"].split())
    assert "val EM" in flat and "test EM" in flat and "0-shot" in flat and "forgett" in flat
    db = str(decoder_store["db"])
    failed = run_cli_main("results", "--failed", "--db", db)
    assert "BitFit" in failed.stdout and "no bias terms" in failed.stdout  # the study went on without it
    export = json.loads(run_cli_main("export", "--format", "json", "--db", db).stdout)
    generated = {r["method"]: r for r in export if r["provenance"]["data"].get("task") == "generate"}
    assert set(generated) == {"LoRA-r8", "IA3"} and len(export) == 3  # and the classify run's LoRA-r8


def _section(text: str, heading: str) -> str:
    return text.split(f"<h2>{heading}", 1)[1].split("<h2>", 1)[0]


def _row(table_html: str, method: str) -> str:
    return next(r for r in table_html.split("<tr>") if r.startswith(f"<td class='t'>{method}"))


def test_generate_report_shows_the_generation_section(decoder_store):
    setup, records = decoder_store["generate"]
    out = decoder_store["tmp"] / "r.html"
    proc = run_cli_main("report", "--db", str(decoder_store["db"]), "--setup", setup, "--include-collapsed",
                        "-o", str(out), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    results, generation = _section(text, "Results"), _section(text, "Generation")
    # the results table: the terminal table's generate headers and cells
    for header in ("val EM", "test EM", "TTFT ms [IQR]", "0-shot val EM", "val EM gain", "forgetting (nats)",
                   "decode tok/s"):
        assert f"<th>{header}</th>" in results
    assert "val acc" not in results and ">OOD bal acc<" not in results  # unmeasured without --ood
    assert re.search(r"<td>\d+\.\d \[\d+\.\d-\d+\.\d\]</td>", results)  # TTFT with its IQR
    assert re.search(r"<td>[-+]\d+\.\d ± \d+\.\d pts</td>", results)  # the gain, paired interval, in points

    lora = records[records["method"] == "LoRA-r8"].iloc[0]
    floor = lora["zero_shot_val_exact_match"]
    assert f"validation exact match {floor:.3f}." in generation  # the zero-shot floor, printed
    bought = generation.split("What training bought", 1)[1].split("<h3>", 1)[0]
    for method, rec in records.groupby("method"):
        row = _row(bought, method)
        assert re.search(r"<td>\d\.\d{3} ± \d\.\d{3}</td>", row)  # val EM with its 95% interval
        assert f"<td>{rec['forgetting'].iloc[0]:+.4f}</td>" in row
        assert f"<td>{rec['general_ce_before'].iloc[0]:.4f}</td>" in row
    inference = generation.split("Decoder inference", 1)[1].split("<h3>", 1)[0]
    assert "TTFT p50 ms [IQR]" in inference and "decode tok/s batch 16" in inference
    assert f"<td>{lora['ttft_p50_ms']:.1f} [" in _row(inference, "LoRA-r8")
    assert lora["merge_same_greedy"] is True and "identical (32 rows)" in _row(inference, "LoRA-r8")
    # the plots and headings elsewhere name what a generate study's "accuracy" is: exact match
    assert "<h2>Pareto front: validation exact match vs trainable parameters" in text and "Pareto front: validation accuracy" not in text

    # samples: the references carry HTML, shown as text
    samples = generation.split("Sample generations", 1)[1]
    assert "&lt;em&gt;good&lt;/em&gt;" in samples and "bad &amp; sad" in samples
    assert "<em>good</em>" not in text and "bad & sad" not in text

    png_dir = out.with_name("r_plots")
    assert GENERATION_PLOTS <= {p.stem for p in png_dir.glob("*.png")}
    seen = census(text).plots
    for name in GENERATION_PLOTS:
        assert f'href="r_plots/{name}.png"' in generation
        assert seen[name]["svg"] == 1 and seen[name]["path"] > 10, seen[name]


def test_decoder_classifier_report_shows_forgetting_only(decoder_store, tmp_path):
    setup, records = decoder_store["classify"]
    written = report_html.write_report(decoder_store["records"], decoder_store["db"], tmp_path / "c.html",
                                       setup=setup, include_collapsed=True)
    text = written.html.read_text(encoding="utf-8")
    assert "<h2>Generation" not in text and "val EM" not in text
    forgetting = _section(text, "Forgetting")
    assert f"<td>{records['forgetting'].iloc[0]:+.4f}</td>" in forgetting
    assert (written.png_dir / "forgetting.png").is_file()
    assert not (written.png_dir / "generation_exact_match.png").exists()


def test_mixed_decoder_store_needs_a_setup(decoder_store, tmp_path):
    with pytest.raises(PeftbenchError, match="2 setups"):
        report_html.write_report(decoder_store["records"], decoder_store["db"], tmp_path / "m.html")
    assert not (tmp_path / "m.html").exists()


def test_encoder_report_has_no_decoder_sections(tmp_path):
    db = write_store(tmp_path / "encoder.db", tradeoff_trials())
    with Store(db, create=False) as store:
        records = store.records()
    written = report_html.write_report(records, Path(db), tmp_path / "e.html")
    text = written.html.read_text(encoding="utf-8")
    assert "<h2>Generation" not in text and "<h2>Forgetting" not in text and "zero-shot" not in text
    assert not GENERATION_PLOTS & {p.stem for p in written.png_dir.glob("*.png")}
    assert "<th>val acc</th>" in _section(text, "Results")


def test_interactive_pareto_view_knows_decoder_directions():
    for field in ("val_exact_match", "val_gain_over_zero_shot", "decode_tokens_per_s_batched"):
        assert higher_is_better(field)
    for field in ("forgetting", "ttft_p50_ms", "response_nll"):
        assert not higher_is_better(field)
