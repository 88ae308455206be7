"""Decoder trials end to end on tiny random causal LMs: --task generate and --task classify, through the same
harness, store and tables as encoders. The real embedded decoder runs in the slow test at the end."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from peftbench.config.spec import DataSpec, TrainSpec, TrialSpec
from peftbench.methods import parse_method
from peftbench.studies.runner import prepare_study_data
from peftbench.trial.run import run_trial


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    """The zero-shot floor (and any converted model) is cached per test session, not in the user's home."""
    monkeypatch.setenv("PEFTBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "peftbench-cache"))


@pytest.fixture
def generate_spec(tiny_csv, tiny_ood_csv):
    return DataSpec(source=tiny_csv, task="generate", validation_size=40, test_size=40, ood_source=tiny_ood_csv,
                    ood_size=30, max_length=40, perturbation_size=40)


TRAIN = TrainSpec(train_size=96, epochs=1, batch_size=16, latency_runs=5, throughput_batches=1)


def _trial(method: str, model: str, data: DataSpec, train: TrainSpec = TRAIN, **kw) -> TrialSpec:
    return TrialSpec(study="tradeoff", method=parse_method(method, decoder=True), model=model, data=data,
                     train=train, **kw)


def test_generate_trial_records_every_decoder_field(tiny_llama, generate_spec):
    data = prepare_study_data(generate_spec, tiny_llama, TRAIN.train_size)
    rec = run_trial(_trial("LoRA-r8", tiny_llama, generate_spec), data)
    assert rec["task"] == "generate" and rec["head_modules"] == []
    # the floor beside the trial's own exact match, on the same validation rows
    assert 0.0 <= rec["zero_shot_val_exact_match"] <= 1.0 and 0.0 <= rec["val_exact_match"] <= 1.0
    assert rec["val_gain_over_zero_shot"] == pytest.approx(rec["val_exact_match"] - rec["zero_shot_val_exact_match"])
    assert len(rec["zero_shot_val_correct"]) == len(rec["val_labels"]) == 40
    # every figure under its own name only: no accuracy or latency aliases in the stored record
    assert np.isfinite(rec["response_nll"]) and "accuracy" not in rec and "val_accuracy" not in rec
    # decoder measures
    assert rec["train_tokens_per_s"] > 0 and rec["flops_per_token"] > 0
    assert rec["ttft_p50_ms"] > 0 and not any(k.endswith("latency_p50_ms") or k.endswith("throughput_per_s")
                                              for k in rec)
    assert rec["decode_tokens_per_s_batch1"] > 0 and rec["decode_tokens_per_s_batched"] > 0
    assert np.isfinite(rec["forgetting"]) and rec["general_ce_before"] > 0
    assert rec["forgetting_sample"]["passages"] > 0
    # LoRA merges, and the merged model writes exactly what the unmerged one wrote
    assert rec["merge_same_greedy"] is True and rec["merge_rows_differing"] == 0
    # TTFT and decode timings carry their own contention check, unmerged and merged
    assert isinstance(rec["inference_timing_contended"], bool) and isinstance(rec["merged_timing_contended"], bool)
    assert "merged_merged_timing_contended" not in rec and rec["merged_ttft_p50_ms"] > 0
    assert rec["ood_exact_match"] is not None and rec["perturbation_rows"] == 40
    assert rec["adapter_bytes"] > 0 and rec["trainable_params"] < rec["base_params"]


def test_zero_shot_floor_is_measured_once_per_setup(tiny_llama, generate_spec, tmp_path, monkeypatch):
    """The second trial of a setup reads the floor the first one measured (and it is the same figure)."""
    monkeypatch.setenv("PEFTBENCH_CACHE", str(tmp_path))
    data = prepare_study_data(generate_spec, tiny_llama, TRAIN.train_size)
    first = run_trial(_trial("IA3", tiny_llama, generate_spec), data)
    cached = list((tmp_path / "zero-shot").glob("*.json"))
    assert len(cached) == 1
    second = run_trial(_trial("SoftPrompt-len16", tiny_llama, generate_spec), data)
    assert second["zero_shot_val_correct"] == first["zero_shot_val_correct"]
    assert second["general_ce_before"] == first["general_ce_before"]  # forgetting's "before", cached with it
    assert json.loads(cached[0].read_text())["zero_shot_val_exact_match"] == first["zero_shot_val_exact_match"]


def test_decoder_classifier_reports_forgetting(tiny_llama, tiny_data_spec, tiny_train_spec):
    data = prepare_study_data(tiny_data_spec, tiny_llama, tiny_train_spec.train_size)
    rec = run_trial(_trial("LoRA-r8", tiny_llama, tiny_data_spec, tiny_train_spec), data)
    assert rec["head_modules"] == ["score"] and rec["head_params"] > 0
    assert rec["merge_max_logit_diff"] < 1e-3
    assert np.isfinite(rec["forgetting"]) and rec["forgetting"] != 0.0  # LoRA changed the backbone
    prefix = run_trial(_trial("PrefixTuning-len16", tiny_llama, tiny_data_spec, tiny_train_spec), data)
    assert prefix["forgetting"] == 0.0  # the backbone's weights are untouched: it predicts text as before


def test_bitfit_on_a_model_without_biases_fails_its_trial_with_the_reason(tiny_llama, tiny_data_spec,
                                                                         tiny_train_spec):
    from peftbench.errors import PeftbenchError

    data = prepare_study_data(tiny_data_spec, tiny_llama, tiny_train_spec.train_size)
    with pytest.raises(PeftbenchError, match="no bias terms"):
        run_trial(_trial("BitFit", tiny_llama, tiny_data_spec, tiny_train_spec), data)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA needs a CUDA GPU (bitsandbytes)")
def test_qlora_trial_on_a_gpu(tiny_llama, generate_spec):
    pytest.importorskip("bitsandbytes")
    train = dataclasses.replace(TRAIN, load_in_4bit=True, bf16=True, device="cuda")
    data = prepare_study_data(generate_spec, tiny_llama, train.train_size)
    rec = run_trial(_trial("LoRA-r8", tiny_llama, generate_spec, train), data)
    assert rec["peak_cuda_allocated_mb"] > 0 and rec["trainable_params"] > 0


@pytest.mark.slow
def test_embedded_decoder_generate_trial(embedded_decoder_cache):
    """The real SmolLM2-135M (converted from its GGUF, once per test session) trains a LoRA on the embedded
    reviews, offline. Small sizes: this checks the real model runs through every measure, not how well."""
    from peftbench.config.spec import EMBEDDED_DECODER

    spec = DataSpec(task="generate", validation_size=8, test_size=8, ood_size=4, perturbation_size=8,
                    max_length=48)
    train = TrainSpec(train_size=16, epochs=1, batch_size=8, latency_runs=3, throughput_batches=1)
    data = prepare_study_data(spec, EMBEDDED_DECODER, train.train_size)
    rec = run_trial(_trial("LoRA-r8", EMBEDDED_DECODER, spec, train), data)
    assert rec["base_params"] == 134_515_008
    assert rec["merge_same_greedy"] is True
    assert 2.0 < rec["general_ce_before"] < 5.0  # real weights: far below ln(49152) = 10.8
    assert rec["val_exact_match"] >= 0.0 and rec["zero_shot_val_exact_match"] >= 0.0


def test_sweeps_run_on_a_decoder(tiny_llama, tiny_csv, tmp_path):
    """data-efficiency and the rank sweep take a decoder as they take an encoder: its default method set and
    learning rates, LoRA on q/k/v/o, and a data-efficiency answer read from validation-chosen sizes."""
    import peftbench as pb
    from peftbench.methods import family
    from peftbench.studies.definitions import StudyOptions, data_efficiency, rank_sweep

    data = DataSpec(source=tiny_csv, task="generate", validation_size=40, test_size=40, ood_source=None,
                    max_length=40, perturbation_size=40)
    opts = StudyOptions(model=tiny_llama, data=data, train=TRAIN)
    specs = data_efficiency(opts, sizes=[32, 64], epochs=1)
    assert {s.method.name for s in specs} == {"Full", "LoRA-r8", "IA3", "PrefixTuning-len16:init=zero"}
    assert next(s for s in specs if s.method.family == "prefix").method.options["init"] == "zero"
    assert all(s.method.learning_rate == family(s.method.family).default_lr_for(True) for s in specs)
    assert {s.train.train_size for s in specs} == {32, 64}
    (r2, r4) = rank_sweep(opts, ranks=[2, 4])
    assert (r2.method.options["r"], r4.method.options["r"]) == (2, 4) and r2.method.name == "LoRA-r2"

    db = tmp_path / "de.db"
    pb.study("data-efficiency", model=tiny_llama, data=data, methods=["LoRA-r8"], sizes=[32, 48], epochs=1,
             batch_size=16, latency_runs=5, throughput_batches=1, db=db)
    curve = pb.data_efficiency(db)
    assert list(curve.index) == ["LoRA-r8"] and 0.0 <= curve.loc["LoRA-r8", "normalized_auc"] <= 1.0


def _cli_options(preset=None, train_size=None, gen=None):
    from peftbench.studies.settings import study_options_from

    return study_options_from({"preset": preset, "train_size": train_size, "no_ood": True, "bf16": False,
                               **(gen or {})})


def test_a_shell_typed_template_gets_its_line_breaks():
    opts = _cli_options(gen={"task": "generate", "template": "Review: {text}\\nSentiment:"})
    assert opts.data.template == "Review: {text}\nSentiment:" and opts.data.task == "generate"
