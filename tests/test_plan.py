"""`peftbench plan`: exact parameter counts from a meta-device build (equal to what a real build counts),
the traced memory split, a 3B config planned without its weights, and bad input as one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli_main

from peftbench.config.spec import DataSpec, TrainSpec
from peftbench.errors import PeftbenchError
from peftbench.measure.params import base_parameter_count, count_parameters
from peftbench.methods import BuildContext, build_model, parse_method
from peftbench.models.loading import load_classifier
from peftbench.plan import memory as mem
from peftbench.plan.assemble import PlanRequest, make_plan
from peftbench.plan.meta_model import build_on_meta, model_source

SEED_FAMILIES = ["Full", "LoRA-r8", "LoRA-AllLayers", "AdaLoRA", "PrefixTuning-len16", "PromptTuning-len16",
                 "BitFit", "IA3", "LNTuning", "VeRA-r256"]
COUNTED = ("trainable_params", "head_params", "adapter_params", "total_params", "base_params")


@pytest.mark.parametrize("model_key", ["tiny", "embedded"])
def test_counts_equal_a_real_build(model_key, tiny_model):
    model = tiny_model if model_key == "tiny" else "embedded"
    source = model_source(model)
    for name in SEED_FAMILIES:
        spec = parse_method(name)
        ctx = BuildContext(total_steps=20, num_labels=2)
        base = load_classifier(model, 2)
        base_params, heads = base_parameter_count(base)
        real = count_parameters(build_model(base, spec, ctx), base_params, heads)
        meta = build_on_meta(source, spec, ctx)
        assert all(p.device.type == "meta" for n, p in meta.model.named_parameters() if "pooler" not in n
                   and "lora" not in n and "prompt" not in n and "modules_to_save" not in n)
        assert {k: meta.counts[k] for k in COUNTED} == {k: real[k] for k in COUNTED}, name


def test_config_only_folder_is_enough(tiny_model, tmp_path):
    folder = tmp_path / "cfg"
    folder.mkdir()
    shutil.copy(Path(tiny_model) / "config.json", folder / "config.json")
    req = PlanRequest(str(folder), DataSpec(), TrainSpec(train_size=64, epochs=1, batch_size=16),
                      [parse_method("LoRA-r8"), parse_method("Full")], calibrate=False)
    plan = make_plan(req)
    assert plan["batches"]["steps"] == 4 and plan["batches"]["peak_shape"][0] == 16
    lora, full = plan["methods"]
    # a config-only folder holds no pooler weights: taken as trained, so only the classifier is head
    assert lora["params"]["head_params"] == 32 * 2 + 2
    assert full["params"]["trainable_params"] == full["params"]["total_params"]
    # AdamW keeps two fp32 states per trained parameter
    trained = full["params"]["trainable_params"]
    assert full["memory"]["optimizer_mb"] == pytest.approx(trained * 8 / mem.MB, abs=0.06)
    assert lora["memory"]["optimizer_mb"] < full["memory"]["optimizer_mb"] / 20
    assert lora["time"]["how"] == "roofline" and lora["time"]["trial_s"] > 0
    assert lora["can_merge"] and not full["can_merge"]
    assert lora["adapter_bytes"] == lora["params"]["saved_params"] * 4


def test_activations_grow_with_batch_and_the_limit(tiny_model):
    train = TrainSpec(train_size=64, epochs=1, batch_size=16)
    folder = tiny_model
    small = make_plan(PlanRequest(folder, DataSpec(max_length=32), train, [parse_method("LoRA-r8")],
                                  calibrate=False, gpu_memory_mb=2000.0, device="cuda"))
    row = small["methods"][0]["memory"]
    assert row["fits"] is True and row["largest_batch"] > 16
    assert row["allocator_mb"] == 0.0  # a CUDA figure is the tensors' own peak
    tight = make_plan(PlanRequest(folder, DataSpec(max_length=32), train, [parse_method("LoRA-r8")],
                                  calibrate=False, gpu_memory_mb=row["weights_mb"] + 0.5, device="cuda"))
    assert tight["methods"][0]["memory"]["fits"] is False
    assert tight["methods"][0]["time"]["how"] == "none"  # no device here and no --device-tflops


PLAN_3B = """
import sys, torch
from transformers import LlamaConfig
from peftbench.config.spec import DataSpec, TrainSpec
from peftbench.methods import parse_method
from peftbench.plan.assemble import PlanRequest, make_plan

def high_water_mib():  # this process's own peak: ru_maxrss would count the parent's RSS it was forked with
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024

# what an earlier in-process test may leave switched on; it made the meta build touch a 1.5 GB embedding
torch.use_deterministic_algorithms(True, warn_only=True)
folder = sys.argv[1]
LlamaConfig(hidden_size=3072, num_hidden_layers=28, intermediate_size=8192, num_attention_heads=24,
            num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True).save_pretrained(folder)
before = high_water_mib()
plan = make_plan(PlanRequest(folder, DataSpec(max_length=256),
                             TrainSpec(train_size=64, epochs=1, batch_size=4, device="cuda"),
                             [parse_method("LoRA-r8")], device="cuda", gpu_memory_mb=80 * 1024,
                             device_tflops=300.0, calibrate=False))
row = plan["methods"][0]
print(row["params"]["total_params"], row["memory"]["weights_mb"], row["time"]["how"],
      row["traced"].replace(" ", "_"), before, high_water_mib())
"""


def test_3b_config_planned_without_weights_under_2gb(tmp_path):
    """A 3B Llama planned from its config alone, in a fresh process whose own peak RSS (VmHWM) is read
    (a shared test process's high-water mark depends on what ran before it): the issue's target is under
    2 GB. The
    process turns deterministic algorithms on, as an earlier in-process trial does, under which the meta
    build once filled a real 1.5 GB embedding (the CI failure): planning itself must add little."""
    proc = subprocess.run([sys.executable, "-c", PLAN_3B, str(tmp_path / "llama3b")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    total, weights_mb, how, traced, before, peak = proc.stdout.split()[-6:]
    assert 3.0e9 < int(total) < 3.8e9
    assert float(weights_mb) > 11_000  # fp32 weights of ~3.2B parameters, none of them allocated
    assert how == "roofline" and traced == "depth_2_and_3,_extrapolated"
    assert float(peak) < 2048 and float(peak) - float(before) < 600, (before, peak)


def test_bad_input_is_one_line(tiny_model, tmp_path):
    with pytest.raises(PeftbenchError, match="not in the local Hugging Face cache"):
        model_source("no-such-org/no-such-model-xyz")
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"model_type": "not-a-real-arch"}))
    with pytest.raises(PeftbenchError, match="cannot read model"):
        model_source(str(odd))
    with pytest.raises(PeftbenchError, match="size such as"):
        mem.parse_size_gb("lots")
    assert mem.parse_size_gb("40GB") == 40 * 1024 and mem.parse_size_gb("512MB") == 512
    cli = ["plan", "--model", tiny_model, "--methods", "LoRA-r8"]
    for extra, text in ((["--gpu-memory", "many"], "must be a size"),
                        (["--load-in-4bit", "--device", "cpu"], "--load-in-4bit needs --device cuda")):
        proc = run_cli_main(*cli, *extra, check=False)  # the CLI's main() in this process
        assert proc.returncode == 2 and text in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_method_that_cannot_apply_is_one_line(tmp_path):
    from transformers import LlamaConfig

    folder = tmp_path / "llama"
    LlamaConfig(hidden_size=32, num_hidden_layers=2, intermediate_size=64, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=256).save_pretrained(folder)
    with pytest.raises(PeftbenchError, match="bitfit: .* has no bias terms"):
        make_plan(PlanRequest(str(folder), DataSpec(), TrainSpec(train_size=32, epochs=1, batch_size=8),
                              [parse_method("BitFit")], calibrate=False))


def test_cli_json_names_units_and_calibrates_once(tiny_model, tmp_path, monkeypatch):
    from peftbench.plan import timing

    monkeypatch.setenv("PEFTBENCH_CACHE", str(tmp_path / "cache"))
    # the drift probe held still: what is tested is the cache (a busy machine moves the real probe past 25%)
    monkeypatch.setattr(timing, "probe_gflops", lambda *a, **k: 50.0)
    req = PlanRequest(tiny_model, DataSpec(max_length=32), TrainSpec(train_size=32, epochs=1, batch_size=8),
                      [parse_method("LoRA-r8")])
    first = make_plan(req)
    assert first["methods"][0]["time"]["how"] == "calibrated" and first["units"]["memory"].startswith("MiB")
    assert len(list(timing.cache_dir().glob("*.json"))) == 1
    again = make_plan(req)  # the cached figure: the same seconds exactly
    assert again["methods"][0]["time"]["trial_s"] == first["methods"][0]["time"]["trial_s"]
    assert len(list(timing.cache_dir().glob("*.json"))) == 1


# --- a study plans first and checks after -------------------------------------------------------------------
STUDY = ["--preset", "quick", "--validation-size", "40", "--test-size", "80", "--epochs", "1",
         "--batch-size", "16", "--max-length", "32", "--train-size", "48"]


@pytest.fixture
def study_args(tiny_model, tiny_csv, tiny_ood_csv):
    return ["--model", tiny_model, "--dataset", tiny_csv, "--ood-dataset", tiny_ood_csv, *STUDY]


def test_a_study_stores_each_prediction_beside_its_measurement(study_args, tmp_path, monkeypatch, cli_main):
    """One real tiny study: Full is left out by --max-memory (one line, before anything runs); BitFit's plan
    fails (injected) and its trial still runs, its record saying why it has no prediction; LoRA-r8's record
    holds the plan's figures beside its own; `run`, `results` and the report show predicted vs measured."""
    import pandas as pd

    from peftbench.plan import assemble
    from peftbench.report.page import Page
    from peftbench.report.sections.plan import plan_section
    from peftbench.store.db import Store

    planned = json.loads(cli_main("plan", *study_args, "--methods", "LoRA-r8,Full", "--format", "json",
                                  "--no-calibrate").stdout)
    lora_mb, full_mb = (r["memory"]["peak_mb"] for r in planned["methods"])
    assert lora_mb < full_mb
    real = assemble.plan_method

    def bitfit_fails(source, spec, *args, **kwargs):
        if spec.family == "bitfit":
            raise RuntimeError("injected plan failure")
        return real(source, spec, *args, **kwargs)

    monkeypatch.setattr(assemble, "plan_method", bitfit_fails)
    db = tmp_path / "store.db"
    limit_gb = (lora_mb + full_mb) / 2 / 1024
    out = cli_main("run", *study_args, "--methods", "Full,LoRA-r8,BitFit", "--db", str(db),
                   "--max-memory", f"{limit_gb:.6f}", "--no-side-by-side")
    left = [line for line in out.stderr.splitlines() if line.startswith("left out:")]
    assert len(left) == 1 and "Full would need" in left[0] and "--max-memory" in left[0], out.stderr
    assert "plan: 2 trial(s) to run, predicted training time" in out.stderr
    with Store(db, create=False) as store:
        records = store.records()
    assert set(records["method"]) == {"LoRA-r8", "BitFit"} and set(records["status"]) == {"ok"}
    lora = records[records["method"] == "LoRA-r8"].iloc[0]
    assert lora["predicted_peak_rss_net_mb"] == pytest.approx(lora_mb, abs=0.1)
    assert lora["predicted_trainable_params"] == lora["trainable_params"]
    assert lora["predicted_train_seconds"] > 0 and lora["predicted_time_how"] == "calibrated"
    assert lora["peak_rss_net_mb"] > 0 and lora["train_seconds"] > 0
    bitfit = records[records["method"] == "BitFit"].iloc[0]
    note = bitfit["prediction_note"]
    assert "no prediction" in note and "injected plan failure" in note
    assert pd.isna(bitfit["predicted_peak_rss_net_mb"])  # nothing predicted
    for text in (out.stdout, cli_main("results", "--db", str(db)).stdout):
        flat = " ".join(text.split())
        assert "Plan vs measured" in flat and "tolerance: memory 25%, time 35%" in flat
        assert "no prediction: the plan of BitFit failed" in flat
    page = Page("plots")
    plan_section(page, records)
    html = "".join(page.parts)
    assert "Plan vs measured" in html and "LoRA-r8" in html and "injected plan failure" in html


def test_results_flag_a_trial_past_the_tolerance():
    """The check reads each device's own figure and flags only what the plan claims: memory past 25%, a
    calibrated time past 35% on a clean timing; a contended timing and a roofline time are not flagged."""
    import pandas as pd

    from peftbench.analysis.plan_check import plan_checks

    records = pd.DataFrame([
        {"method": "A", "seed": 0, "predicted_peak_rss_net_mb": 100.0, "peak_rss_net_mb": 150.0,
         "predicted_train_seconds": 10.0, "train_seconds": 10.5, "predicted_time_how": "calibrated",
         "timing_contended": False, "predicted_trainable_params": 5, "trainable_params": 5},
        {"method": "B", "seed": 0, "predicted_peak_rss_net_mb": 100.0, "peak_rss_net_mb": 95.0,
         "predicted_train_seconds": 10.0, "train_seconds": 30.0, "predicted_time_how": "calibrated",
         "timing_contended": True},
        {"method": "C", "seed": 0, "predicted_peak_cuda_allocated_mb": 1000.0,
         "peak_cuda_allocated_mb": 990.0, "peak_rss_net_mb": 3000.0, "predicted_train_seconds": 1.0,
         "train_seconds": 9.0, "predicted_time_how": "roofline", "timing_contended": False},
        {"method": "D", "seed": 0, "peak_rss_net_mb": 80.0},  # a trial from before plans: not a row
    ])
    checks = plan_checks(records).set_index("method")
    assert list(checks.index) == ["A", "B", "C"]
    a, b, c = (checks.loc[m] for m in "ABC")
    assert a["flags"] == ["memory"] and a["memory_error_pct"] == pytest.approx(-33.3, abs=0.1)
    assert b["flags"] == [] and b["time_error_pct"] == pytest.approx(-66.7, abs=0.1)
    assert c["memory_measured_as"] == "peak_cuda_allocated_mb" and c["flags"] == []
    assert checks.loc["C", "memory_error_pct"] == pytest.approx(100 / 99, abs=1e-6)


def test_budget_refuses_before_anything_and_says_what_would_fit(study_args, tmp_path, cli_main):
    """A study predicted to train longer than --budget stops before its store exists: by how much, and the
    quickest methods (or a smaller train size) that would fit."""
    from peftbench.config.spec import TrialSpec
    from peftbench.studies.forecast import _check_budget

    db = tmp_path / "store.db"
    out = cli_main("run", *study_args, "--methods", "LoRA-r8,BitFit", "--db", str(db), "--budget", "0.001s",
                   check=False)
    assert out.returncode == 2 and not db.exists(), out.stderr
    error = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "over --budget 0.001 s by" in error[0] and "nothing was run" in error[0]
    assert "plan: 2 trial(s) to run" in out.stderr  # the plan is printed before the refusal

    specs = [TrialSpec(study="t", method=parse_method(m), train=TrainSpec(train_size=1000, batch_size=16))
             for m in ("Full", "LoRA-r8", "BitFit")]
    times = dict(zip((s.trial_id for s in specs), (100.0, 30.0, 20.0)))
    with pytest.raises(PeftbenchError) as err:
        _check_budget(specs, times, 60.0)
    message = str(err.value)
    assert "2 min 30 s, is over --budget 1 min 00 s by 1 min 30 s" in message
    assert "--methods BitFit,LoRA-r8 (50 s)" in message and "--train-size 400" in message
    _check_budget(specs, times, 150.0)  # fits: no error


@pytest.mark.parametrize("flag,value,phrase", [
    ("--budget", "20x", "--budget must be a duration such as 90s, 20m or 1.5h"),
    ("--budget", "-5m", "--budget must be a duration"),
    ("--budget", "0", "--budget must be a positive duration"),
    ("--max-memory", "lots", "--max-memory must be a size such as 40, 40GB or 512MB"),
    ("--max-memory", "0", "--max-memory must be a positive, finite size"),
])
def test_bad_budget_values_are_one_line_and_write_nothing(study_args, tmp_path, flag, value, phrase,
                                                          cli_main):
    db = tmp_path / "store.db"
    out = cli_main("run", *study_args, "--methods", "LoRA-r8", "--db", str(db), flag, value, check=False)
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1 and phrase in lines[0], out.stderr
    assert not db.exists() and not list(tmp_path.iterdir())


def test_budget_units_and_the_api_refuses_alike(tmp_path):
    import peftbench as pb
    from peftbench.studies.forecast import parse_budget

    assert parse_budget("90s") == 90 and parse_budget("20m") == 1200 and parse_budget("1.5h") == 5400
    assert parse_budget(600) == 600 and parse_budget(None) is None
    with pytest.raises(PeftbenchError, match="--budget must be a duration"):
        pb.run(methods=["LoRA-r8"], db=tmp_path / "s.db", budget="soon")
    assert not (tmp_path / "s.db").exists()


def test_cuda_prediction_path_on_cpu(tiny_llama):
    """On CUDA the measured figure is peak allocated (no allocator share): the plan made for a CUDA device on
    this CPU machine predicts it for LoRA and full fine-tuning of a decoder, and a study's record stores it
    under predicted_peak_cuda_allocated_mb."""
    from peftbench.config.spec import TrialSpec
    from peftbench.studies.forecast import prediction_fields, _method_key

    methods = [parse_method("LoRA-r8"), parse_method("Full")]
    train = TrainSpec(train_size=32, epochs=1, batch_size=8, device="cuda")
    data = DataSpec(max_length=48, task="generate")
    plan = make_plan(PlanRequest(tiny_llama, data, train, methods, device="cuda", calibrate=False))
    lora, full = plan["methods"]
    for row in (lora, full):
        m = row["memory"]
        assert m["measured_as"].startswith("CUDA: peak allocated") and m["allocator_mb"] == 0.0
        parts = m["weights_mb"] + m["gradients_mb"] + m["optimizer_mb"] + m["activations_mb"]
        assert m["peak_mb"] == pytest.approx(parts, abs=0.2)  # the traced live bytes, nothing added
    lora_m, full_m = lora["memory"], full["memory"]
    assert full_m["optimizer_mb"] == pytest.approx(full["params"]["trainable_params"] * 8 / mem.MB, abs=0.1)
    assert lora_m["optimizer_mb"] < full_m["optimizer_mb"] / 20 and lora_m["peak_mb"] < full_m["peak_mb"]
    spec = TrialSpec(study="t", method=methods[0], model=tiny_llama, data=data, train=train)
    fields = prediction_fields(spec, {_method_key(spec): {**lora, "_plan_device": "cuda"}})
    assert fields["predicted_peak_cuda_allocated_mb"] == lora["memory"]["peak_mb"]
    assert "predicted_peak_rss_net_mb" not in fields


def test_deep_models_are_traced_at_depth_2_and_3_exactly(tmp_path):
    """An 8-layer model's step traced at depth 2 and 3 and extrapolated equals its full-depth trace to the
    byte and the FLOP, phase by phase (the layers are alike)."""
    from transformers import BertConfig

    from peftbench.plan.shallow import Tracer
    from peftbench.plan.trace import fake_copy, trace_train_step

    folder = tmp_path / "deep"
    BertConfig(vocab_size=500, hidden_size=32, num_hidden_layers=8, num_attention_heads=4,
               intermediate_size=64, max_position_embeddings=64).save_pretrained(folder)
    source = model_source(str(folder))
    ctx = BuildContext(total_steps=10, num_labels=2)
    for name in ("Full", "LoRA-r8", "PrefixTuning-len16"):
        spec = parse_method(name)
        model, mode = fake_copy(build_on_meta(source, spec, ctx).model)
        full = trace_train_step(model, mode, 4, 24, False)
        def build(s, spec=spec):
            return build_on_meta(s, spec, ctx).model

        tracer = Tracer(model, mode, source, build, False, False)
        assert tracer.extrapolating
        ext = tracer.train(4, 24)
        assert ext.phase_peaks == full.phase_peaks and ext.flops == full.flops, name
        assert ext.flops_at(4, 24) == pytest.approx(full.flops)


def test_cpu_memory_grows_with_the_trials_steps(tiny_model):
    """A CPU trial's RSS keeps more freed activation blocks the more steps it runs (plan/memory.py): the same
    batch shapes over 8x the steps predict more memory, by the allocator's share alone."""
    plans = [make_plan(PlanRequest(tiny_model, DataSpec(max_length=16),
                                   TrainSpec(train_size=64, epochs=epochs, batch_size=16),
                                   [parse_method("LoRA-r8")], calibrate=False))["methods"][0]["memory"]
             for epochs in (1, 8)]
    few, many = plans
    assert many["activations_mb"] == pytest.approx(few["activations_mb"])
    assert many["allocator_mb"] > few["allocator_mb"] and many["peak_mb"] > few["peak_mb"]
    assert mem.cpu_activation_scale(126) > mem.cpu_activation_scale(10) > mem.cpu_activation_scale(1) > 1.0
