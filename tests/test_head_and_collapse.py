"""The fair head (an untrained pooler trains with the classifier, at the head's own rate), the collapse
check, and the contention flag on timings."""

import numpy as np
import pytest
import torch

from peftbench.methods import BuildContext, build_model, parse_method
from peftbench.models.loading import head_module_names, load_classifier, untrained_pooler
from peftbench.stats.predictions import decode, encode
from peftbench.tasks.classify.evaluate import constant_predictor_f1, detect_collapse
from peftbench.trial.train import optimizer_groups


def test_collapse_detector_flags_one_class_and_near_constant_f1():
    labels = np.array([0] * 58 + [1] * 42)
    one_class = np.zeros(100, dtype=np.int64)
    assert detect_collapse(labels, one_class)[0]
    assert "100% of validation predictions are class 0" in detect_collapse(labels, one_class)[1]
    # 94% one class is under the share threshold, but its macro-F1 is no better than a constant's
    nearly = one_class.copy()
    nearly[:6] = 1  # six wrong "1"s among true zeros
    collapsed, reason = detect_collapse(labels, nearly)
    assert collapsed and "constant predictor" in reason
    # a model that learned something is not collapsed
    good = labels.copy()
    good[:10] = 1 - good[:10]
    assert detect_collapse(labels, good) == (False, None)


def test_constant_predictor_f1_is_the_best_constant():
    labels = np.array([0, 0, 0, 1])
    # predicting 0 always: F1(class0)=2*.75/(1.75)=0.857, F1(class1)=0 -> macro 0.4286
    assert constant_predictor_f1(labels) == pytest.approx(0.428571, abs=1e-5)


def test_predictions_round_trip():
    for arr in (np.array([0, 1, 1, 0]), np.arange(40), np.array([], dtype=np.int64)):
        assert np.array_equal(decode(encode(arr)), arr)


def test_untrained_pooler_joins_the_head(tiny_model):
    model = load_classifier(tiny_model, 2)
    assert untrained_pooler(model) is not None  # random init: the pooler bias is zero
    assert head_module_names(model) == ["classifier", "pooler"]
    with torch.no_grad():
        model.bert.pooler.dense.bias.fill_(0.01)  # what a trained pooler looks like
    assert untrained_pooler(model) is None and head_module_names(model) == ["classifier"]


@pytest.mark.parametrize("method", ["LoRA-r8", "PrefixTuning-len16", "PromptTuning-len16", "BitFit", "IA3"])
def test_every_method_trains_an_untrained_pooler_as_head(tiny_model, method):
    model = build_model(load_classifier(tiny_model, 2), parse_method(method),
                        BuildContext(total_steps=20, num_labels=2))
    pooler = [p for n, p in model.named_parameters() if ".pooler." in n and p.requires_grad]
    assert sum(p.numel() for p in pooler) == 32 * 32 + 32  # dense weight + bias of the 32-wide tiny BERT


def test_head_has_its_own_learning_rate_capped_for_prompt_methods(tiny_model):
    spec = parse_method("PrefixTuning-len16")
    assert spec.learning_rate == pytest.approx(3e-2) and spec.head_learning_rate == pytest.approx(3e-3)
    assert parse_method("Full").head_learning_rate == parse_method("Full").learning_rate
    # P-tuning's head keeps the method's rate: capped at 3e-2, its len32 preset collapsed on validation
    ptuning = parse_method("PromptTuning-len32")
    assert ptuning.head_learning_rate == ptuning.learning_rate
    assert parse_method("PromptTuning-len32:lr=0.03").head_learning_rate == pytest.approx(3e-2)
    custom = parse_method("lora:head_lr=1e-4")
    assert custom.head_learning_rate == pytest.approx(1e-4) and ":head_lr=0.0001" in custom.name
    model = build_model(load_classifier(tiny_model, 2), spec, BuildContext(total_steps=20, num_labels=2))
    groups = optimizer_groups(model, 0.01, spec.learning_rate, spec.head_learning_rate, ("classifier", "pooler"))
    head_ids = {id(p) for n, p in model.named_parameters()
                if p.requires_grad and ("classifier" in n.split(".") or "pooler" in n.split("."))}
    for g in groups:
        in_head = {id(p) in head_ids for p in g["params"]}
        assert len(in_head) == 1  # a group is all head or no head
        assert g["lr"] == (spec.head_learning_rate if in_head.pop() else spec.learning_rate)


def test_contended_timing_is_flagged():
    from types import SimpleNamespace

    from peftbench.trial.measure_training import timing_load

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        quiet = timing_load(SimpleNamespace(cpu_seconds=19.0, seconds=10.0), torch.device("cpu"), 0.0)
        busy = timing_load(SimpleNamespace(cpu_seconds=6.0, seconds=10.0), torch.device("cpu"), 0.0)
    finally:  # later tests compare in-process trials with subprocess ones: thread counts must not leak
        torch.set_num_threads(before)
    assert busy["timing_contended"] and "30%" in busy["timing_note"]
    assert busy["cpu_utilisation"] == pytest.approx(0.3)
    assert quiet["cpu_utilisation"] == pytest.approx(0.95)
    # the quiet one may still be flagged by the machine's real load average; never by its CPU share
    assert quiet["timing_note"] is None or "CPU time" not in quiet["timing_note"]
    crowded = timing_load(SimpleNamespace(cpu_seconds=19.0, seconds=10.0), torch.device("cpu"), 0.0,
                          other_cores=1.2)
    assert crowded["timing_contended"] and "other processes kept 1.2 of" in crowded["timing_note"]


def test_a_neighbour_process_is_seen_in_the_machines_cpu_time():
    """A 1-thread neighbour moves no load average past a threshold and leaves this process's CPU share
    alone, yet takes a core: the machine's busy time less our own shows it."""
    import subprocess
    import sys
    import time

    from peftbench.measure.machine_load import LoadProbe, machine_busy_seconds

    if machine_busy_seconds() is None:
        pytest.skip("/proc/stat is missing or counts CPUs this process cannot use")
    probe = LoadProbe.start()
    subprocess.run([sys.executable, "-c", "import time\nt = time.perf_counter()\n"
                    "while time.perf_counter() - t < 1.5: pass"], check=True)
    others = probe.other_cores()
    assert others is not None and others > 0.5  # ~1 core spun by the neighbour while we waited
    idle = LoadProbe.start()
    time.sleep(0.2)
    assert idle.other_cores() < others


def test_prompt_methods_pool_the_real_cls_token(tiny_model):
    """P-tuning prepends 16 virtual tokens: the pooler must read [CLS] at position 16, not a virtual token."""
    from peftbench.methods.prompts import ClsAfterPrompt

    model = build_model(load_classifier(tiny_model, 2), parse_method("PromptTuning-len16"),
                        BuildContext(total_steps=20, num_labels=2))
    wrappers = [m for m in model.modules() if isinstance(m, ClsAfterPrompt)]
    assert wrappers and all(w.offset == 16 for w in wrappers)
    hidden = torch.randn(2, 16 + 5, 32)
    w = wrappers[0]
    assert torch.allclose(w(hidden), w.inner(hidden[:, 16:]))
    assert torch.allclose(w(hidden), torch.tanh(w.inner.dense(hidden[:, 16])))


def test_a_merge_peft_cannot_do_keeps_the_trial(tiny_model, tiny_data_spec, tiny_train_spec):
    """IA3 with the pooler in modules_to_save: peft's unload fails; the trial keeps every other figure."""
    from peftbench.config.spec import TrialSpec
    from peftbench.data.prepared import prepare_data
    from peftbench.trial.run import run_trial

    spec = TrialSpec(study="t", method=parse_method("IA3"), model=tiny_model, data=tiny_data_spec,
                     train=tiny_train_spec)
    rec = run_trial(spec, prepare_data(tiny_data_spec, tiny_model, 200))
    assert rec["accuracy"] is not None and rec["latency_p50_ms"] > 0
    assert "merged_latency_p50_ms" in rec or rec["merge_error"]
