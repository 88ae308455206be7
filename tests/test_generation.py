"""The generation task: prompt/response data, the response-only loss, greedy scoring, forgetting and decoder
speed, on the tiny random Llama (SmolLM2's tokenizer) and real peft adapters. No mocks."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import NEGATIVE, POSITIVE, make_rows

from peftbench.config.spec import DataSpec, TrainSpec
from peftbench.data.prepared import TokenizedSet, collate, eval_batches, train_batches
from peftbench.data.sources import LabelledText, load_source
from peftbench.data.split import make_split
from peftbench.errors import PeftbenchError
from peftbench.measure.forgetting import forgetting, general_text_sample, next_token_ce
from peftbench.stats.predictions import decode, encode
from peftbench.tasks.classify.evaluate import detect_collapse
from peftbench.tasks.generate.data import (
    DEFAULT_TEMPLATE,
    IGNORE,
    TEMPLATES,
    GenerationSet,
    load_generation_rows,
    prepare_generation_data,
    rows_from_labelled,
    rows_from_table,
    tokenize_rows,
)
from peftbench.tasks.generate.evaluate import (
    evaluate_generation,
    exact_match,
    generate_ids,
    label_metrics,
    normalize_answer,
    response_nll,
    takes_logits_to_keep,
    to_classes,
)
from peftbench.tasks.generate.speed import (
    compare_greedy,
    decode_tokens_per_s,
    same_greedy_outputs,
    time_to_first_token_ms,
)
from peftbench.trial.train import train

CPU = torch.device("cpu")
PAD = EOS = 2
NAMES = ["negative", "positive"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two shared cores: one thread runs a 32-wide model several times faster than two contending ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok(tiny_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)


def _lm(path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(path)


def _labelled(rows) -> LabelledText:
    return LabelledText([t for t, _ in rows], np.array([NAMES.index(lab) for _, lab in rows]), NAMES, "rows")


def _sentiment_last(text: str) -> str:
    """make_rows' text with its sentiment words moved to the end, next to the answer."""
    words = text.split()
    cue = [w for w in words if w in POSITIVE + NEGATIVE]
    return " ".join([w for w in words if w not in cue] + cue)


def _set(tok, rows, template=DEFAULT_TEMPLATE, max_length=64) -> GenerationSet:
    gen_rows = rows_from_labelled(_labelled(rows), template)
    return tokenize_rows(tok, gen_rows, np.arange(len(rows)), max_length)[0]


# --- data --------------------------------------------------------------------------------------------------


def test_training_batch_puts_the_loss_on_response_tokens_only(tok, tiny_llama):
    data = _set(tok, [("a b", "positive"), ("the film was really quite moving and funny", "negative")])
    batch = data.batch([0, 1], PAD)
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    for r in range(2):
        p, a = len(data.prompt_ids[r]), len(data.response_ids[r])
        assert ids[r, : p + a].tolist() == data.prompt_ids[r].tolist() + data.response_ids[r].tolist()
        assert (labels[r, :p] == IGNORE).all() and (labels[r, p + a:] == IGNORE).all()
        assert labels[r, p: p + a].tolist() == data.response_ids[r].tolist()
        assert mask[r].tolist() == [1] * (p + a) + [0] * (ids.shape[1] - p - a)
    assert data.response_ids[0][-1] == EOS and data.references == [" positive", " negative"]
    # the model's loss is the cross-entropy over the response tokens (and eos) alone
    model = _lm(tiny_llama)
    with torch.no_grad():
        out = model(**batch)
    logits, target = out.logits[:, :-1], labels[:, 1:]
    scored = target != IGNORE
    by_hand = torch.nn.functional.cross_entropy(logits[scored], target[scored])
    everything = torch.nn.functional.cross_entropy(logits[mask[:, 1:].bool()], ids[:, 1:][mask[:, 1:].bool()])
    assert scored.sum() == 4 and torch.allclose(out.loss, by_hand, atol=1e-6)
    assert not torch.allclose(out.loss, everything, atol=1e-3)


def test_prompt_batch_is_left_padded_and_sets_batch_like_collate(tok):
    data = _set(tok, [("a", "positive"), ("the film was really quite moving", "negative")])
    b = data.prompt_batch([0, 1], PAD)
    short, long_ = len(data.prompt_ids[0]), len(data.prompt_ids[1])
    assert b["input_ids"].shape == (2, long_) and b["attention_mask"][:, -1].tolist() == [1, 1]
    assert b["attention_mask"][0].tolist() == [0] * (long_ - short) + [1] * short
    assert b["input_ids"][0, -short:].tolist() == data.prompt_ids[0].tolist()
    # TokenizedSet.batch is collate: the classify task's batches are unchanged
    ts = TokenizedSet([np.array([5, 6, 7]), np.array([8])], np.array([1, 0]))
    got = ts.batch(np.array([1, 0]), 0)
    want = collate([ts.input_ids[1], ts.input_ids[0]], np.array([0, 1]), 0)
    assert all(torch.equal(got[k], want[k]) for k in want)
    # the training loop's batching runs on a generation set as it is
    rows = _set(tok, make_rows(40))
    batches = list(train_batches(rows, 8, np.random.default_rng(0), PAD))
    assert sum(len(x["labels"]) for x in batches) == 40 and all(x["labels"].ndim == 2 for x in batches)
    order = np.concatenate([idx for idx, _ in eval_batches(rows, 16, PAD)])
    assert sorted(order.tolist()) == list(range(40))


def test_truncation_cuts_the_text_and_keeps_the_whole_response(tok):
    long_text = " ".join(["wonderful acting and a moving story"] * 20)
    rows = rows_from_labelled(_labelled([(long_text, "positive"), ("short", "negative")]), TEMPLATES["review"])
    data, counts = tokenize_rows(tok, rows, np.arange(2), max_length=24)
    assert counts == {"prompts_truncated": 1, "rows_dropped_too_long": 0}
    assert data.lengths.max() <= 24 and data.lengths[0] >= 22  # cut close to the limit, not far below it
    assert data.response_ids[0].tolist() == tok(" positive", add_special_tokens=False)["input_ids"] + [EOS]
    prompt = tok.decode(data.prompt_ids[0].tolist())
    assert prompt.startswith("Review: wonderful acting") and prompt.endswith("\nSentiment:")
    # prompt columns: the prompt's start is cut, so the question right before the answer survives
    df = pd.DataFrame({"q": ["background " * 60 + "What is two plus two?"], "a": [" four"]})
    qa = rows_from_table(df, "q", "a", "qa")
    qa_set, qa_counts = tokenize_rows(tok, qa, np.arange(1), max_length=20)
    assert qa_counts["prompts_truncated"] == 1 and qa_set.lengths[0] <= 20
    assert tok.decode(qa_set.prompt_ids[0].tolist()).endswith("What is two plus two?")
    assert qa_set.response_ids[0].tolist() == tok(" four", add_special_tokens=False)["input_ids"] + [EOS]
    # a response that leaves no room for any text drops its row (counted), never cuts the response
    _, tight = tokenize_rows(tok, rows, np.arange(2), max_length=8)
    assert tight["rows_dropped_too_long"] == 2


def test_columns_missing_and_empty(tmp_path):
    path = tmp_path / "qa.csv"
    pd.DataFrame({"prompt": ["Say hi", "", "Count to 2", "Name a colour"],
                  "answer": ["hi", "x", None, "red"]}).to_csv(path, index=False)
    spec = DataSpec(source=str(path), task="generate", prompt_column="question", response_column="answer")
    with pytest.raises(PeftbenchError) as err:
        load_generation_rows(spec)
    assert "'question'" in str(err.value) and "\n" not in str(err.value)
    rows = load_generation_rows(DataSpec(source=str(path), task="generate", prompt_column="prompt",
                                         response_column="answer"))
    assert rows.texts == ["Say hi", "Name a colour"] and rows.responses == ["hi", "red"]
    assert rows.dropped == {"missing_prompt": 1, "missing_response": 1} and rows.label_names is None


def test_templates_are_named_and_hold_text():
    assert DEFAULT_TEMPLATE == TEMPLATES["instruction"]  # the validation argmax of TEMPLATE_EVIDENCE
    assert len(TEMPLATES) >= 2 and all("{text}" in t and not t.endswith(" ") for t in TEMPLATES.values())
    rows = rows_from_labelled(_labelled([("nice {braces}", "positive")]), "{text} -> {label}?")
    assert rows.responses == [" positive"] and rows.cut == "end"  # other braces are left alone


def test_prepare_uses_the_classification_split(tok, tiny_llama, tiny_csv, tiny_ood_csv):
    spec = DataSpec(source=tiny_csv, task="generate", validation_size=40, test_size=80,
                    ood_source=tiny_ood_csv, ood_size=30, max_length=32, perturbation_size=20)
    data = prepare_generation_data(spec, tiny_llama, 200, tokenizer=tok)
    labelled = load_source(tiny_csv, "text", "label")
    split = make_split(labelled, spec.split_seed, 40, 80)
    assert len(data.train_pool) == 200 and len(data.validation) == 40 and len(data.test) == 80
    assert np.array_equal(data.test.labels, labelled.labels[split.test])  # the rows a classifier tests on
    assert data.test.references[:3] == [" " + NAMES[c] for c in labelled.labels[split.test[:3]]]
    assert data.max_new_tokens == 2 and data.eos_token_id == EOS and data.num_labels == 2  # " positive" + eos
    assert len(data.ood) == 30 and set(data.perturbed) | set(data.perturbations_skipped) == {
        "typo", "word_dropout", "word_swap", "case"}
    assert all(len(p) == 20 and p.references == data.test.references[:20] for p in data.perturbed.values())
    again = prepare_generation_data(spec, tiny_llama, 200, tokenizer=tok)
    assert again.provenance["split_hash"] == data.provenance["split_hash"]
    question = dataclasses.replace(spec, template=TEMPLATES["question"])
    other = prepare_generation_data(question, tiny_llama, 200, tokenizer=tok)
    assert other.provenance["split_hash"] != data.provenance["split_hash"]


# --- scoring -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("generation,reference,same", [
    (" Positive.", "positive", True), ("The answer", "answer", True), ("  an   apple ", "apple", True),
    ("Paris!", "paris", True), ("positively", "positive", False), ("not positive", "positive", False),
    ("", "positive", False),
])
def test_exact_match_normalisation(generation, reference, same):
    assert exact_match(generation, reference) is same
    assert normalize_answer("  The  Answer, an  a!  ") == "answer"


def test_other_generations_count_as_wrong():
    preds = to_classes([" Positive.", " negative", "positively", "", " neutral"], NAMES)
    assert preds.tolist() == [1, 0, 2, 2, 2]
    labels = np.array([1, 0, 1, 0, 1])
    m = label_metrics(labels, preds, 2)
    assert m["recall"] == pytest.approx((1 / 2 + 1 / 3) / 2)  # other = a miss of the true class
    assert m["precision"] == 1.0  # ...never a wrong guess of another task class
    assert float((preds == labels).mean()) == 0.4
    with pytest.raises(PeftbenchError, match="told apart"):
        to_classes(["x"], ["Yes", "yes."])


@pytest.fixture(scope="module")
def learned(tok, tiny_llama):
    """LoRA (MLP projections, r=16) plus the three answer tokens' rows of the tied embedding, trained 80 steps
    on make_rows with the sentiment words last: a task the 32-wide random Llama learns in seconds."""
    from peft import LoraConfig, TaskType, get_peft_model

    rows = [(_sentiment_last(t), lab) for t, lab in make_rows(360, seed=1)]
    answers = [tok(" " + n, add_special_tokens=False)["input_ids"][0] for n in NAMES]
    train_set, test_set = _set(tok, rows[:320], "{text}"), _set(tok, rows[320:], "{text}")
    model = get_peft_model(_lm(tiny_llama), LoraConfig(
        task_type=TaskType.CAUSAL_LM, r=16, lora_alpha=16,
        target_modules=["gate_proj", "up_proj", "down_proj"], trainable_token_indices=answers + [EOS]))
    before = evaluate_generation(model, test_set, tok, CPU, PAD, max_new_tokens=3)
    spec = TrainSpec(train_size=320, epochs=2, batch_size=8, warmup_ratio=0.0)
    result = train(model, train_set, spec, 2e-2, 0, CPU, PAD)
    after = evaluate_generation(model, test_set, tok, CPU, PAD, max_new_tokens=3)
    return model, test_set, before, after, result


def test_training_raises_exact_match_above_the_untrained_floor(learned):
    _, test_set, before, after, result = learned
    assert result.steps == 80
    assert before["exact_match"] <= 0.05 and after["exact_match"] >= 0.9
    assert after["response_nll"] < 0.3 and before["response_nll"] > 5
    accuracy = float((after["predictions"] == after["labels"]).mean())
    assert after["exact_match"] == after["accuracy"] == accuracy
    assert np.array_equal(after["correct"], after["predictions"] == test_set.labels)
    assert after["f1"] >= 0.9 and not detect_collapse(after["labels"], after["predictions"])[0]
    assert detect_collapse(before["labels"], before["predictions"])[0]  # all "other": collapsed
    assert np.array_equal(decode(encode(after["predictions"])), after["predictions"])
    assert len(after["generations"]) == 5
    assert all(g in (" positive", " negative") for g in after["generations"])
    assert after["response_nll_sum"].shape == after["response_tokens"].shape == (len(test_set),)
    assert (after["response_tokens"] == 2).all()


def test_free_form_predictions_are_correctness(tok, learned):
    model, test_set, _, after, _ = learned
    free = GenerationSet(test_set.prompt_ids, test_set.response_ids, test_set.references)
    out = evaluate_generation(model, free, tok, CPU, PAD, max_new_tokens=3, with_nll=False)
    assert out["exact_match"] == after["exact_match"] and out["response_nll"] is None
    assert out["labels"].tolist() == [1] * len(free) and np.array_equal(out["predictions"], out["correct"])
    assert "f1" not in out


@pytest.mark.parametrize("kind", ["none", "lora", "prompt", "prefix"])
def test_response_nll_is_the_models_own_loss(tok, tiny_llama, kind):
    """Teacher-forced NLL per response token equals the loss peft/transformers compute (virtual tokens and
    all), and generation on every kind returns continuations only."""
    from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType, get_peft_model

    configs = {"lora": LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, target_modules=["q_proj", "v_proj"]),
               "prompt": PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=4),
               "prefix": PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=4)}
    model = _lm(tiny_llama)
    if kind != "none":
        model = get_peft_model(model, configs[kind])
    data = _set(tok, make_rows(6))
    sums, counts = response_nll(model, data, CPU, PAD)
    model.eval()
    with torch.no_grad():
        loss = float(model(**data.batch(np.arange(6), PAD)).loss)
    assert counts.tolist() == [2] * 6 and sums.sum() / counts.sum() == pytest.approx(loss, rel=1e-5)
    assert takes_logits_to_keep(model)  # the figure above came from the response positions' logits only
    ids = generate_ids(model, data, CPU, PAD, EOS, max_new_tokens=3, batch_size=4)
    assert len(ids) == 6 and all(0 < len(x) <= 3 and EOS not in x for x in ids)


# --- forgetting --------------------------------------------------------------------------------------------


def test_forgetting_known_answers(tok, tiny_llama):
    from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model

    sample = general_text_sample(tok, n=8, length=32, batch_size=4)
    again = general_text_sample(tok, n=8, length=32, batch_size=4)
    assert len(sample) == 2 and sample.batches[0]["input_ids"].shape == (4, 32)
    assert sample.provenance["token_hash"] == again.provenance["token_hash"]
    assert len({s for s, _ in sample.provenance["windows"]}) == 8  # eight different speeches
    assert sample.provenance["token_hash"] != general_text_sample(tok, 8, 32, seed=1).provenance["token_hash"]

    base = _lm(tiny_llama)
    before = next_token_ce(base, sample, CPU)
    assert 10 < before < 11.5  # a random 49,152-token model: about ln(49152) = 10.8
    lora = get_peft_model(base, LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, target_modules="all-linear"))
    assert forgetting(before, next_token_ce(lora, sample, CPU)) == 0.0  # B = 0: identical logits
    # prompt tuning: its virtual tokens sit in front and are skipped. peft's own loss also scores the first
    # real token (from the last virtual one), which a bare model cannot predict: ours leaves it out.
    prompted = get_peft_model(_lm(tiny_llama), PromptTuningConfig(task_type=TaskType.CAUSAL_LM,
                                                                  num_virtual_tokens=4))
    batch = sample.batches[0]
    ours = next_token_ce(prompted, [batch], CPU)
    with torch.no_grad():
        out = prompted(**batch, labels=batch["input_ids"])
    first = torch.nn.functional.cross_entropy(out.logits[:, 3], batch["input_ids"][:, 0], reduction="sum")
    assert out.logits.shape[1] == 4 + 32
    assert float(out.loss) * 4 * 32 == pytest.approx(ours * 4 * 31 + float(first), rel=1e-5)
    assert ours != pytest.approx(next_token_ce(_lm(tiny_llama), [batch], CPU), abs=1e-4)

    full = _lm(tiny_llama)
    before = next_token_ce(full, sample, CPU)
    opt = torch.optim.AdamW(full.parameters(), lr=3e-2)
    unrelated = torch.tensor([[100, 101, 102, 103] * 4] * 4)
    full.train()
    for _ in range(8):
        full(input_ids=unrelated, labels=unrelated).loss.backward()
        opt.step()
        opt.zero_grad()
    assert forgetting(before, next_token_ce(full, sample, CPU)) > 0.5  # about 3 nats


# --- decoder speed and merging -----------------------------------------------------------------------------


def test_time_to_first_token_and_tokens_per_second(tok, tiny_llama):
    model = _lm(tiny_llama)
    data = _set(tok, make_rows(8))
    ttft = time_to_first_token_ms(model, data, runs=5, device=CPU, pad_id=PAD, warmup=1)
    assert 0 < ttft["ttft_p25_ms"] <= ttft["ttft_p50_ms"] <= ttft["ttft_p95_ms"]
    one = decode_tokens_per_s(model, data, CPU, PAD, batch_size=1, new_tokens=16, repeats=2)
    four = decode_tokens_per_s(model, data, CPU, PAD, batch_size=4, new_tokens=16, repeats=2)
    assert one["tokens_per_s"] > 0 and four["tokens_per_s"] > 0
    assert ttft["ttft_p50_ms"] < one["ms"]  # the first token comes before sixteen do
    # eos is ignored: exactly 16 new tokens, also where greedy would have stopped
    fixed = generate_ids(model, data, CPU, PAD, EOS, max_new_tokens=16, min_new_tokens=16)
    assert all(len(x) == 16 for x in fixed)


def test_merged_and_unmerged_greedy_outputs_are_identical(tok, tiny_llama, learned):
    model, test_set, *_ = learned
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(float(p.detach().abs().max()) > 0 for p in lora_b)  # training moved the adapter
    merged = copy.deepcopy(model).merge_and_unload()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    same = same_greedy_outputs(model, merged, test_set, CPU, PAD, EOS, max_new_tokens=3)
    assert same == {"identical": True, "rows_differing": 0, "rows": len(test_set)}
    # the check can fail: the untrained base answers differently
    differs = same_greedy_outputs(model, _lm(tiny_llama), test_set, CPU, PAD, EOS, max_new_tokens=3)
    assert not differs["identical"] and differs["rows_differing"] == len(test_set)
    a = generate_ids(model, test_set, CPU, PAD, EOS, 3)
    assert compare_greedy(a, a)["identical"]
