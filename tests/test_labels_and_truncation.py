"""Labels as users ship them (-1 is a class unless the data or the user says "no label"), integer-coded OOD
labels paired only when the user confirms the codes, and truncation at max_length counted per split."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import FILLER, POSITIVE, make_rows, write_csv

from peftbench.config.spec import DataSpec, MethodSpec, TrialSpec
from peftbench.data.prepared import prepare_data
from peftbench.data.sources import embedded_dataset, embedded_ood_dataset, load_source, match_ood_labels
from peftbench.data.split import split_data
from peftbench.data.truncation import cut_counts, truncation_note
from peftbench.errors import PeftbenchError


def _three_way(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """Sentiment coded -1/0/1 (negative/neutral/positive), a common convention."""
    rows = make_rows(n, seed=seed, labels=("positive", "negative", "neutral"))
    return [(t, {"positive": 1, "negative": -1, "neutral": 0}[lab]) for t, lab in rows]


# --- job 1: -1 is a class in a plain integer column ------------------------------------------------------


def test_minus_one_zero_one_is_three_classes(tmp_path, tiny_model):
    path = str(write_csv(tmp_path / "d.csv", _three_way(300)))
    data = load_source(path, "text", "label")
    assert data.label_names == ["-1", "0", "1"] and len(data) == 300 and data.dropped["unlabelled"] == 0
    assert np.bincount(data.labels).tolist() == [100, 100, 100]
    prepared = prepare_data(DataSpec(source=path, ood_source=None, validation_size=30, test_size=60,
                                     max_length=32), tiny_model, 100)
    assert prepared.num_labels == 3 and prepared.label_names == ["-1", "0", "1"]
    assert set(np.unique(prepared.test.labels)) == {0, 1, 2}
    assert prepared.provenance["unlabelled_dropped"] == 0
    assert not any("unlabelled" in n for n in prepared.notes)


def test_minus_one_and_one_is_two_classes(tmp_path):
    rows = [(t, 1 if lab == "positive" else -1) for t, lab in make_rows(60)]
    data = load_source(str(write_csv(tmp_path / "d.csv", rows)), "text", "label")
    assert data.label_names == ["-1", "1"] and data.dropped["unlabelled"] == 0 and len(data) == 60


def _folder_of_splits(folder, test_rows) -> str:
    """A GLUE-style folder of split files read without ClassLabel names: train and validation labelled 0/1,
    the test split's every label -1."""
    folder.mkdir()
    write_csv(folder / "train.csv", [(t, int(lab == "positive")) for t, lab in make_rows(200, seed=1)])
    write_csv(folder / "validation.csv", [(t, int(lab == "positive")) for t, lab in make_rows(40, seed=2)])
    write_csv(folder / "test.csv", test_rows)
    return str(folder)


def test_a_split_of_minus_ones_is_unlabelled_and_noted(tmp_path, tiny_model):
    folder = _folder_of_splits(tmp_path / "glue", [(t, -1) for t, _ in make_rows(30, seed=3)])
    data = load_source(folder, "text", "label")
    assert data.label_names == ["0", "1"] and data.dropped["unlabelled"] == 30
    assert data.unlabelled_splits == {"test": 30} and len(data.splits["test"]) == 0
    prepared = prepare_data(DataSpec(source=folder, ood_source=None, validation_size=10, test_size=100,
                                     max_length=32), tiny_model, 50)
    assert prepared.num_labels == 2 and prepared.provenance["unlabelled_splits_dropped"] == {"test": 30}
    note = next(n for n in prepared.notes if "unlabelled" in n)
    assert note == ("dropped 30 unlabelled rows: 30 of split 'test', whose every label is -1 "
                    "(as GLUE ships test)")
    assert prepared.provenance["split_origin"]["test"].startswith("official validation split, used as test")


def test_a_split_with_some_minus_ones_keeps_them_as_a_class(tmp_path):
    test_rows = [(t, -1) for t, _ in make_rows(20, seed=3)] + [(t, 1) for t, _ in make_rows(10, seed=4)]
    data = load_source(_folder_of_splits(tmp_path / "ds", test_rows), "text", "label")
    assert data.label_names == ["-1", "0", "1"] and data.dropped["unlabelled"] == 0
    assert data.unlabelled_splits == {} and len(data.splits["test"]) == 30


def test_the_option_drops_its_value_with_a_note_counting_them(tmp_path, tiny_model):
    rows = _three_way(300) + [(f"unrated review number {i}", -1) for i in range(7)] + [("blank", "")]
    path = str(write_csv(tmp_path / "d.csv", rows))
    spec = DataSpec(source=path, ood_source=None, validation_size=30, test_size=60, max_length=32,
                    unlabelled_value="-1")
    data = load_source(path, "text", "label", unlabelled_value="-1")
    assert data.label_names == ["0", "1"] and data.dropped["unlabelled"] == 108  # 100 + 7 of -1, 1 blank
    prepared = prepare_data(spec, tiny_model, 100)
    assert "dropped 108 unlabelled rows: 1 with an empty label; 107 labelled '-1' (--unlabelled-value)" \
        in prepared.notes
    assert prepared.provenance["unlabelled_dropped_by"]["unlabelled_value"] == 107
    # a text value, in a column of names
    named = [(t, lab) for t, lab in make_rows(40)] + [("not rated", "unknown")] * 3
    data = load_source(str(write_csv(tmp_path / "n.csv", named)), "text", "label", unlabelled_value="unknown")
    assert data.label_names == ["negative", "positive"] and data.dropped["unlabelled"] == 3


def test_new_options_leave_trial_ids_alone_at_their_defaults():
    method = MethodSpec(name="BitFit", family="bitfit")
    base = TrialSpec(study="s", method=method, data=DataSpec())
    explicit = TrialSpec(study="s", method=method, data=DataSpec(unlabelled_value=None, ood_same_codes=False))
    assert explicit.trial_id == base.trial_id
    assert "unlabelled_value" not in base.to_dict()["data"] and "ood_same_codes" not in base.to_dict()["data"]
    given = TrialSpec(study="s", method=method, data=DataSpec(unlabelled_value=-1))
    assert given.data.unlabelled_value == "-1" and given.trial_id != base.trial_id
    assert TrialSpec.from_dict(given.to_dict()).trial_id == given.trial_id
    assert TrialSpec(study="s", method=method, data=DataSpec(ood_same_codes=True)).trial_id != base.trial_id


def test_options_reach_the_data_spec():
    from peftbench.studies.settings import study_options_from

    opts = study_options_from({"dataset": "d.csv", "unlabelled_value": "-1", "ood_same_codes": True})
    assert opts.data.unlabelled_value == "-1" and opts.data.ood_same_codes is True
    opts = study_options_from({}, {"unlabelled_value": -1})  # a config file's YAML number
    assert opts.data.unlabelled_value == "-1" and opts.data.ood_same_codes is False


# --- job 2: integer OOD codes are paired only when the user says so ----------------------------------------


def _coded(n: int, seed: int, flipped: bool = False) -> list[tuple[str, int]]:
    return [(t, int((lab == "positive") != flipped)) for t, lab in make_rows(n, seed=seed)]


def test_integer_ood_codes_are_refused_without_confirmation(tmp_path, tiny_model):
    task = str(write_csv(tmp_path / "task.csv", _coded(300, 0)))
    ood = str(write_csv(tmp_path / "ood.csv", _coded(60, 5, flipped=True)))  # the opposite coding
    spec = DataSpec(source=task, ood_source=ood, validation_size=20, test_size=40, ood_size=60, max_length=32)
    with pytest.raises(PeftbenchError) as err:
        prepare_data(spec, tiny_model, 50)
    message = str(err.value)
    assert "\n" not in message and "--ood-same-codes" in message and "--ood-label-map" in message
    assert message.startswith("out-of-domain labels are integer codes (0, 1)")
    # confirmed the same: paired by code
    same = prepare_data(dataclasses.replace(spec, ood_same_codes=True), tiny_model, 50)
    assert same.provenance["ood_label_map"] == {"0": "0", "1": "1"} and same.provenance["ood_same_codes"]
    # a map that says the codes are opposite: each row gets the task's meaning back
    mapped = prepare_data(dataclasses.replace(spec, ood_label_map="0=1,1=0"), tiny_model, 50)
    assert mapped.provenance["ood_label_map"] == {"0": "1", "1": "0"}
    raw = load_source(ood, "text", "label")
    relabelled, _ = match_ood_labels(raw, ["0", "1"], (("0", "1"), ("1", "0")))
    positive = np.array([any(w in t.split() for w in POSITIVE) for t in relabelled.texts])
    assert np.array_equal(relabelled.labels == 1, positive)  # flipped back to the task's coding


def test_named_ood_labels_and_the_embedded_pair_need_no_flag():
    ood, task = embedded_ood_dataset(), embedded_dataset()
    assert not ood.integer_codes and not task.integer_codes
    relabelled, used = match_ood_labels(ood, task.label_names, None)
    assert used == {"negative": "negative", "positive": "positive"} and len(relabelled) == len(ood)


def test_the_cli_says_what_to_pass(tmp_path, tiny_model, monkeypatch, capsys):
    from peftbench.cli.app import main

    task = str(write_csv(tmp_path / "task.csv", _coded(150, 0)))
    ood = str(write_csv(tmp_path / "ood.csv", _coded(60, 5)))
    argv = ["peftbench", "run", "--model", tiny_model, "--dataset", task, "--ood-dataset", ood,
            "--preset", "quick", "--train-size", "32", "--epochs", "1", "--batch-size", "16",
            "--max-length", "16", "--methods", "BitFit", "--unlabelled-value", "-1",
            "--db", str(tmp_path / "s.db")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exited.value.code not in (0, None) and len(err) == 1, err
    assert "pass --ood-same-codes if they do" in err[0]


# --- job 3: truncation counted -----------------------------------------------------------------------------


def _long_rows(n: int, every: int) -> list[tuple[str, str]]:
    """make_rows' 7-word reviews (9 to 11 BERT tokens); every `every`-th one padded with 33 filler words,
    each one wordpiece (42 tokens and more)."""
    rows = make_rows(n)
    padding = [" " + " ".join(FILLER[(i + k) % len(FILLER)] for k in range(33)) for i in range(n)]
    return [(t + padding[i] if i % every == 0 else t, lab) for i, (t, lab) in enumerate(rows)]


def test_rows_cut_and_tokens_lost_are_exact(tmp_path, tiny_model):
    from transformers import AutoTokenizer

    rows = _long_rows(300, every=10)
    path = str(write_csv(tmp_path / "d.csv", rows))
    ood_rows = _long_rows(50, every=5)
    ood = str(write_csv(tmp_path / "ood.csv", ood_rows))
    spec = DataSpec(source=path, ood_source=ood, validation_size=30, test_size=60, ood_size=50, max_length=32)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    lengths = [len(tok(t)["input_ids"]) for t, _ in rows]  # whole lengths, read apart from peftbench
    assert lengths[:2] == [42, 9] and max(lengths[1:10]) < 32 < min(lengths[::10])
    prepared = prepare_data(spec, tiny_model, 150)
    data = load_source(path, "text", "label")
    split = split_data(data, spec.split_seed, 30, 60, False)
    assert [data.texts[i] for i in range(300)] == [t for t, _ in rows]  # nothing dropped, order kept
    truncation = prepared.provenance["truncation"]
    for name, idx in (("train_pool", split.train_pool[:150]), ("validation", split.validation),
                      ("test", split.test)):
        long_ = [i for i in idx if i % 10 == 0]
        assert truncation[name] == {"rows": len(idx), "rows_cut": len(long_),
                                    "tokens_lost": sum(lengths[i] - 32 for i in long_)}, name
        assert long_, name  # every split holds some long rows
    ood_lengths = [len(tok(t)["input_ids"]) for t, _ in ood_rows]
    assert truncation["ood"] == {"rows": 50, "rows_cut": 10,
                                 "tokens_lost": sum(n - 32 for n in ood_lengths if n > 32)}
    # the ids are those truncation=True gives, long rows and short
    texts = [data.texts[i] for i in split.test]
    want = tok(texts, truncation=True, max_length=32)["input_ids"]
    assert [x.tolist() for x in prepared.test.input_ids] == want
    assert max(len(x) for x in prepared.test.input_ids) == 32
    # noted when the study starts (10% of every split is cut)
    note = next(n for n in prepared.notes if n.startswith("truncated"))
    assert note.startswith("truncated at max_length 32: train_pool ") and "ood 10/50 rows (20.0%" in note


def test_every_trial_record_carries_the_counts(tmp_path, tiny_model):
    import torch

    from peftbench.record.schema import checked
    from peftbench.trial.record import start_record

    path = str(write_csv(tmp_path / "d.csv", _long_rows(200, every=4)))
    spec = DataSpec(source=path, ood_source=None, validation_size=20, test_size=40, max_length=32)
    prepared = prepare_data(spec, tiny_model, 100)
    trial = TrialSpec(study="s", method=MethodSpec(name="BitFit", family="bitfit"), model=tiny_model,
                      data=spec)
    record = checked(start_record(trial, prepared, torch.device("cpu"), 0.0))  # declared, so it stores
    assert record["truncation"] == prepared.provenance["truncation"]
    assert record["truncation"]["test"]["rows"] == 40 and record["truncation"]["test"]["rows_cut"] > 0


def test_the_note_shows_above_one_percent_only():
    assert cut_counts([9, 42, 42], [9, 32, 0]) == {"rows": 3, "rows_cut": 2, "tokens_lost": 52}
    assert truncation_note({"test": {"rows": 100, "rows_cut": 1, "tokens_lost": 3}}) is None  # 1%: not more
    assert truncation_note({"test": {"rows": 100, "rows_cut": 0, "tokens_lost": 0}}) is None
    note = truncation_note({"test": {"rows": 100, "rows_cut": 2, "tokens_lost": 9},
                            "validation": {"rows": 100, "rows_cut": 1, "tokens_lost": 4}}, 64)
    assert note == ("truncated at max_length 64: test 2/100 rows (2.0%, 9 tokens lost) "
                    "(--max-length keeps more)")


def _table_text(records: pd.DataFrame) -> str:
    from rich.console import Console

    from peftbench.report.tables import results_table

    console = Console(width=300, record=True)
    console.print(results_table(records, "peftbench: s"))
    return " ".join(console.export_text().split())


def test_the_results_table_notes_heavy_truncation_and_only_that():
    base = {"study": "s", "train_size": 100, "seed": 0, "accuracy": 0.8, "train_seconds": 5.0}
    light = {"train_pool": {"rows": 1000, "rows_cut": 3, "tokens_lost": 20},
             "test": {"rows": 800, "rows_cut": 8, "tokens_lost": 50}}  # 0.3% and 1.0%
    heavy = {**light, "test": {"rows": 800, "rows_cut": 40, "tokens_lost": 900}}  # 5%
    quiet = _table_text(pd.DataFrame([{**base, "method": "Full", "truncation": light},
                                      {**base, "method": "BitFit", "truncation": light}]))
    assert "truncated" not in quiet and "0.800" in quiet
    loud = _table_text(pd.DataFrame([{**base, "method": "Full", "truncation": light},
                                     {**base, "method": "BitFit", "truncation": heavy}]))
    assert "truncated: test 40/800 rows (5.0%, 900 tokens lost)" in loud and "train_pool" not in loud
    older = _table_text(pd.DataFrame([{**base, "method": "Full"}]))  # a record from before the field
    assert "truncated" not in older


def test_generate_counts_truncation_per_split(tmp_path, tiny_llama):
    from transformers import AutoTokenizer

    from peftbench.tasks.generate.data import (
        TEMPLATES,
        prepare_generation_data,
        rows_from_labelled,
        tokenize_rows,
    )

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    long_text = " ".join(["wonderful acting and a moving story"] * 20)
    data = load_source(str(write_csv(tmp_path / "g.csv", [(long_text, "positive"), ("short", "negative")])),
                       "text", "label")
    rows = rows_from_labelled(data, TEMPLATES["review"])
    gset, counts = tokenize_rows(tok, rows, np.arange(2), max_length=24)
    whole = len(tok(TEMPLATES["review"].replace("{text}", long_text))["input_ids"]) + \
        len(gset.response_ids[0])
    assert counts == {"prompts_truncated": 1, "rows_dropped_too_long": 0}
    assert gset.truncation == {"rows": 2, "rows_cut": 1, "tokens_lost": whole - int(gset.lengths[0])}
    tight_set, tight = tokenize_rows(tok, rows, np.arange(2), max_length=8)  # no room for text: dropped
    assert tight["rows_dropped_too_long"] == 2 and tight_set.truncation["rows_cut"] == 2
    spec = DataSpec(source=str(write_csv(tmp_path / "d.csv", _long_rows(300, every=10))), task="generate",
                    validation_size=30, test_size=60, ood_source=None, max_length=32, perturbation_size=10)
    prepared = prepare_generation_data(spec, tiny_llama, 100, tokenizer=tok)
    trunc = prepared.provenance["truncation"]
    assert set(trunc) == {"train_pool", "validation", "test"}
    assert trunc["test"]["rows"] == 60 and trunc["test"]["rows_cut"] > 0 and trunc["test"]["tokens_lost"] > 0
    test = trunc["test"]
    assert test["rows_cut"] == test["prompts_truncated"] + test["rows_dropped_too_long"]
    assert any(n.startswith("truncated at max_length 32") for n in prepared.notes)
