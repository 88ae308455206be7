"""`peftbench plan`: exact parameter counts from a meta-device build (equal to what a real build counts),
the traced memory split, a 3B config planned without its weights, and bad input as one line."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
    assert full["memory"]["optimizer_mb"] == pytest.approx(full["params"]["trainable_params"] * 8 / mem.MB, abs=0.06)
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


def test_3b_config_planned_in_seconds_without_weights(tmp_path):
    from transformers import LlamaConfig

    folder = tmp_path / "llama3b"
    LlamaConfig(hidden_size=3072, num_hidden_layers=28, intermediate_size=8192, num_attention_heads=24,
                num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True).save_pretrained(folder)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    plan = make_plan(PlanRequest(str(folder), DataSpec(max_length=256),
                                 TrainSpec(train_size=64, epochs=1, batch_size=4, device="cuda"),
                                 [parse_method("LoRA-r8")], device="cuda", gpu_memory_mb=80 * 1024,
                                 device_tflops=300.0, calibrate=False))
    seconds = time.perf_counter() - t0
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    row = plan["methods"][0]
    assert 3.0e9 < row["params"]["total_params"] < 3.8e9
    assert row["memory"]["weights_mb"] > 11_000  # fp32 weights of ~3.2B parameters
    assert row["time"]["how"] == "roofline" and row["time"]["trial_s"] > 0
    assert seconds < 60 and grown < 1000, (seconds, grown)


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
    cli = [sys.executable, "-m", "peftbench.cli", "plan", "--model", tiny_model, "--methods", "LoRA-r8"]
    for extra, text in ((["--gpu-memory", "many"], "must be a size"),
                        (["--load-in-4bit", "--device", "cpu"], "--load-in-4bit needs --device cuda")):
        proc = subprocess.run([*cli, *extra], capture_output=True, text=True, timeout=120)
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
    req = PlanRequest(tiny_model, DataSpec(max_length=32), TrainSpec(train_size=32, epochs=1, batch_size=8),
                      [parse_method("LoRA-r8")])
    first = make_plan(req)
    assert first["methods"][0]["time"]["how"] == "calibrated" and first["units"]["memory"].startswith("MiB")
    assert len(list(timing.cache_dir().glob("*.json"))) == 1
    again = make_plan(req)  # the cached figure: same seconds
    assert again["methods"][0]["time"]["trial_s"] == pytest.approx(first["methods"][0]["time"]["trial_s"],
                                                                   rel=0.3)
    assert len(list(timing.cache_dir().glob("*.json"))) == 1
