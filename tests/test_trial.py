"""A real (tiny) trial end to end: every measured field is present and sane, and it is deterministic."""

import pytest

from peftbench.config.spec import TrialSpec
from peftbench.data.prepared import prepare_data
from peftbench.methods import parse_method
from peftbench.stats.predictions import decode
from peftbench.trial.run import run_trial

REQUIRED = [
    "method", "seed", "train_size", "trainable_params", "adapter_params", "head_params", "total_params",
    "trainable_pct", "train_seconds", "seconds_per_epoch", "train_samples_per_s", "peak_rss_mb", "baseline_rss_mb",
    "peak_cuda_allocated_mb", "peak_cuda_reserved_mb", "flops_per_step", "train_flops", "accuracy", "f1",
    "precision", "recall", "eval_loss", "val_loss", "latency_p50_ms", "latency_p95_ms", "throughput_per_s",
    "inference_peak_rss_mb", "adapter_bytes", "ood_accuracy", "ood_balanced_accuracy", "robustness_drop",
    "perturbed_typo_accuracy", "perturbed_word_dropout_accuracy", "perturbed_word_swap_accuracy", "provenance",
    "peak_rss_net_mb", "train_cpu_seconds", "cpu_utilisation", "timing_contended", "collapsed",
    "test_predictions", "test_labels", "val_predictions", "val_majority_rate", "latency_p25_ms", "latency_p75_ms",
    "inference_timing_contended", "inference_timing_note", "inference_other_cores_busy", "flops_batch_tokens",
]


@pytest.fixture
def prepared(tiny_model, tiny_data_spec):
    return prepare_data(tiny_data_spec, tiny_model, 200)


def _spec(tiny_model, tiny_data_spec, tiny_train_spec, method, seed=0):
    return TrialSpec(study="t", method=parse_method(method), model=tiny_model, data=tiny_data_spec,
                     train=tiny_train_spec, seed=seed)


def test_lora_record_complete(tiny_model, tiny_data_spec, tiny_train_spec, prepared):
    rec = run_trial(_spec(tiny_model, tiny_data_spec, tiny_train_spec, "LoRA-r8"), prepared)
    missing = [k for k in REQUIRED if k not in rec]
    assert not missing
    assert rec["peak_cuda_allocated_mb"] is None  # CPU
    assert rec["peak_rss_mb"] >= rec["baseline_rss_mb"] > 0
    assert rec["train_flops"] == rec["flops_per_step"] * rec["train_steps"]
    assert rec["latency_p95_ms"] >= rec["latency_p50_ms"] > 0
    assert rec["can_merge"] and rec["merge_max_logit_diff"] < 1e-4
    # the merged figures count: logits within 1e-3 of their scale, and the merged timing has its own check
    assert rec["merge_max_logit_diff"] <= 1e-3 * max(1.0, rec["merge_logit_scale"]) and rec["merge_logit_scale"] > 0
    assert isinstance(rec["merged_timing_contended"], bool) and isinstance(rec["inference_timing_contended"], bool)
    assert (rec["inference_timing_note"] is None) == (not rec["inference_timing_contended"])
    assert rec["merged_latency_p50_ms"] > 0
    assert 0 < rec["adapter_bytes"] < 200_000  # the adapter, not the model
    prov = rec["provenance"]
    assert prov["versions"]["torch"] and prov["data"]["split_hash"] and prov["cpu"]
    assert prov["data"]["split_sizes"]["test"] == 80
    # per-row predictions are stored, in test order, so every interval can be recomputed from the store
    preds, labels = decode(rec["test_predictions"]), decode(rec["test_labels"])
    assert len(preds) == len(labels) == rec["test_size"] == 80
    assert abs((preds == labels).mean() - rec["accuracy"]) < 1e-12
    assert rec["peak_rss_net_mb"] == pytest.approx(rec["peak_rss_mb"] - rec["baseline_rss_mb"])
    assert rec["latency_p25_ms"] <= rec["latency_p50_ms"] <= rec["latency_p75_ms"]
    # robustness is a drop in accuracy on the same rows, never a ratio
    n = rec["perturbation_rows"]
    clean = (preds[:n] == labels[:n]).mean()
    typo = (decode(rec["perturbed_typo_predictions"]) == labels[:n]).mean()
    assert rec["robustness_drop_typo"] == pytest.approx(typo - clean)


def test_full_finetuning_learns_the_tiny_task(tiny_model, tiny_data_spec, tiny_train_spec):
    import dataclasses

    train = dataclasses.replace(tiny_train_spec, train_size=400, epochs=5)
    spec = TrialSpec(study="t", method=parse_method("Full", 1e-3), model=tiny_model, data=tiny_data_spec, train=train)
    rec = run_trial(spec, prepare_data(tiny_data_spec, tiny_model, 400))
    assert rec["accuracy"] > 0.9  # sentiment words carry the label
    assert rec["final_train_loss"] < 0.5
    assert not rec["can_merge"] and "merged_latency_p50_ms" not in rec
    assert rec["adapter_bytes"] > 4 * rec["trainable_params"] * 0.99  # full model shipped, fp32


def test_same_spec_and_seed_same_result(tiny_model, tiny_data_spec, tiny_train_spec, prepared):
    a = run_trial(_spec(tiny_model, tiny_data_spec, tiny_train_spec, "BitFit:lr=1e-2"), prepared)
    b = run_trial(_spec(tiny_model, tiny_data_spec, tiny_train_spec, "BitFit:lr=1e-2"), prepared)
    c = run_trial(_spec(tiny_model, tiny_data_spec, tiny_train_spec, "BitFit:lr=1e-2", seed=1), prepared)
    assert a["accuracy"] == b["accuracy"] and a["final_train_loss"] == b["final_train_loss"]
    assert a["final_train_loss"] != c["final_train_loss"]


def test_trial_id_is_spec_hash(tiny_model, tiny_data_spec, tiny_train_spec):
    s1 = _spec(tiny_model, tiny_data_spec, tiny_train_spec, "LoRA-r8")
    s2 = _spec(tiny_model, tiny_data_spec, tiny_train_spec, "LoRA-r8")
    s3 = _spec(tiny_model, tiny_data_spec, tiny_train_spec, "LoRA-r4")
    assert s1.trial_id == s2.trial_id != s3.trial_id
    assert TrialSpec.from_dict(s1.to_dict()).trial_id == s1.trial_id


def test_an_option_added_later_keeps_earlier_ids_at_its_default(tiny_model, tiny_data_spec, tiny_train_spec):
    """prefix's init option came after prefix trials were stored: at its default (random) it is not part of
    the identity, so re-running an earlier study finds its trials; set to zero it is a different trial."""
    default = _spec(tiny_model, tiny_data_spec, tiny_train_spec, "PrefixTuning-len16")
    zero = _spec(tiny_model, tiny_data_spec, tiny_train_spec, "PrefixTuning-len16:init=zero")
    assert "init" not in default.to_dict()["method"]["options"]
    assert zero.to_dict()["method"]["options"]["init"] == "zero" and zero.trial_id != default.trial_id
    assert TrialSpec.from_dict(default.to_dict()).trial_id == default.trial_id
