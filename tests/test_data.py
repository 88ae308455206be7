"""Data sources, the seeded stratified split, nested subsets, and length-bucketed batches."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import POSITIVE, make_rows, write_csv

from peftbench.config.file import load_config_file
from peftbench.config.spec import DataSpec, MethodSpec, TrainSpec, TrialSpec
from peftbench.data.prepared import collate, num_train_batches, prepare_data, train_batches
from peftbench.data.sources import embedded_dataset, embedded_ood_dataset, load_source, match_ood_labels
from peftbench.data.split import content_hash, make_split, split_data, stratified_order
from peftbench.errors import PeftbenchError


def test_embedded_dataset_matches_the_brief():
    data = embedded_dataset()
    assert len(data) == 12808  # plot rows dropped
    assert data.label_names == ["negative", "positive"]
    assert int(data.labels.sum()) == 7403  # fresh = positive


def test_embedded_ood_drops_neutral():
    ood = embedded_ood_dataset()
    assert len(ood) == 16186 + 6954
    assert set(np.unique(ood.labels)) == {0, 1}


def test_split_is_seeded_stratified_and_hashed():
    data = embedded_dataset()
    a = make_split(data, 42, 200, 800)
    b = make_split(data, 42, 200, 800)
    c = make_split(data, 7, 200, 800)
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)
    assert content_hash(data, a) == content_hash(data, b) != content_hash(data, c)
    assert len(set(a.test) | set(a.validation) | set(a.train_pool)) == len(data)  # disjoint and complete
    overall = data.labels.mean()
    assert abs(data.labels[a.test].mean() - overall) < 0.01
    # nested subsets are stratified at every prefix
    for n in (100, 250, 1000):
        assert abs(data.labels[a.train_pool[:n]].mean() - overall) < 0.03


def test_stratified_order_prefixes_balanced():
    labels = np.array([0] * 300 + [1] * 100)
    order = stratified_order(labels, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(400))
    assert abs(labels[order[:40]].mean() - 0.25) <= 0.05


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "tsv"])
def test_file_formats_and_string_labels(tmp_path, fmt):
    df = pd.DataFrame(make_rows(60), columns=["review", "sentiment"])
    path = tmp_path / f"d.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "tsv":
        df.to_csv(path, index=False, sep="\t")
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in df.to_dict("records")))
    else:
        df.to_parquet(path)
    data = load_source(str(path), "review", "sentiment")
    assert data.label_names == ["negative", "positive"] and len(data) == 60


def test_integer_labels_and_three_classes(tmp_path):
    rows = [(t, {"positive": 2, "negative": 0}[lab]) for t, lab in make_rows(40)] + [("neutral text", 1)] * 10
    data = load_source(str(write_csv(tmp_path / "d.csv", rows)), "text", "label")
    assert data.num_labels == 3 and data.label_names == ["0", "1", "2"]


def test_hf_dataset_loader_on_a_local_folder(tmp_path):
    """`--dataset NAME` goes through datasets.load_dataset; a local folder exercises the same code."""
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    write_csv(folder / "train.csv", make_rows(50))
    write_csv(folder / "test.csv", make_rows(20, seed=3))
    data = load_source(str(folder), "text", "label")
    assert len(data) == 70 and data.label_names == ["negative", "positive"]


@pytest.mark.parametrize("content,phrase", [
    ("text,label\nonly one,pos\nagain,pos\n", "single class"),
    ("words,label\na,pos\nb,neg\n", "no text column 'text'"),
    ("", "is empty"),
])
def test_bad_files(tmp_path, content, phrase):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(PeftbenchError, match=phrase):
        load_source(str(p), "text", "label")


def test_non_utf8_and_directory(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("text,label\ncaf\xe9 bien,pos\nnul,neg\n".encode("latin-1"))
    with pytest.raises(PeftbenchError, match="not UTF-8"):
        load_source(str(p), "text", "label")
    with pytest.raises(PeftbenchError, match="does not exist"):
        load_source(str(tmp_path / "missing.csv"), "text", "label")


def test_prepared_data_and_bucketing(tiny_model, tiny_data_spec):
    data = prepare_data(tiny_data_spec, tiny_model, 200)
    assert len(data.train_pool) == 200 and len(data.test) == 80 and len(data.ood) == 60
    kinds = set(data.perturbed) | set(data.perturbations_skipped)
    assert kinds == {"typo", "word_dropout", "word_swap", "case"}
    batches = list(train_batches(data.train_pool, 16, np.random.default_rng(0), data.pad_token_id))
    assert len(batches) == num_train_batches(200, 16)
    assert sum(len(b["labels"]) for b in batches) == 200
    # dynamic padding: each batch is only as wide as its longest row
    widths = [b["input_ids"].shape[1] for b in batches]
    assert max(widths) <= 32 and all(b["attention_mask"][:, -1].any() for b in batches)
    with pytest.raises(PeftbenchError, match="larger than the training pool"):
        prepare_data(tiny_data_spec, tiny_model, 10_000)


def test_collate_pads_to_longest_only():
    b = collate([np.array([1, 2, 3]), np.array([4])], np.array([0, 1]), pad_id=0)
    assert b["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_dataspec_validation():
    with pytest.raises(PeftbenchError, match="perturbation_rate"):
        DataSpec(perturbation_rate=0).validate()
    with pytest.raises(PeftbenchError, match="test_size must be positive"):
        DataSpec(test_size=-1).validate()


# --- unlabelled rows -------------------------------------------------------------------------------------


def _glue_folder(path, n_train=120, n_val=40, n_test=30):
    """A GLUE-style dataset folder: ClassLabel labels, and a test split whose labels are all -1."""
    import datasets

    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})

    def part(n, seed, hidden=False):
        rows = make_rows(n, seed=seed)
        return datasets.Dataset.from_dict(
            {"sentence": [t for t, _ in rows],
             "label": [-1 if hidden else int(lab == "positive") for _, lab in rows]}, features=features)

    datasets.DatasetDict({"train": part(n_train, 1), "validation": part(n_val, 2),
                          "test": part(n_test, 3, hidden=True)}).save_to_disk(str(path))
    return str(path)


def test_classlabel_with_unlabelled_test_split_is_two_classes(tmp_path):
    data = load_source(_glue_folder(tmp_path / "glue"), "sentence", "label")
    assert data.label_names == ["negative", "positive"] and data.num_labels == 2
    assert data.dropped["unlabelled"] == 30 and len(data) == 160
    assert set(np.unique(data.labels)) == {0, 1}
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 120, "validation": 40, "test": 0}


def test_unlabelled_rows_are_dropped_and_counted(tmp_path):
    rows = [(t, int(lab == "positive")) for t, lab in make_rows(40)]
    rows += [("nor here", ""), ("blank label", " ")]
    data = load_source(str(write_csv(tmp_path / "d.csv", rows)), "text", "label")
    assert data.label_names == ["0", "1"] and len(data) == 40
    assert data.dropped["unlabelled"] == 2


def test_minus_one_is_a_class_when_no_zero_label(tmp_path):
    rows = [(t, 1 if lab == "positive" else -1) for t, lab in make_rows(40)]
    data = load_source(str(write_csv(tmp_path / "d.csv", rows)), "text", "label")
    assert data.label_names == ["-1", "1"] and data.dropped["unlabelled"] == 0


def test_notes_are_printed_once_by_the_runner(tmp_path, tiny_model, capsys):
    from peftbench.studies.runner import run_trials

    rows = [(t, int(lab == "positive")) for t, lab in make_rows(300)] + [("unlabelled", -1)] * 7
    spec = DataSpec(source=str(write_csv(tmp_path / "d.csv", rows)), ood_source=None, validation_size=20,
                    test_size=40, max_length=32, unlabelled_value="-1")

    class NoTrials:
        def run(self, specs, data, on_event, on_start):
            return iter(())

        def cancel(self):
            pass

    trial = TrialSpec(study="t", method=MethodSpec(name="BitFit", family="bitfit"), model=tiny_model,
                      data=spec, train=TrainSpec(train_size=100))
    run_trials([trial], tmp_path / "s.db", NoTrials())
    err = capsys.readouterr().err
    assert err.count("dropped 7 unlabelled rows") == 1


# --- official splits -------------------------------------------------------------------------------------


def test_glue_folder_keeps_official_splits(tmp_path, tiny_model):
    spec = DataSpec(source=_glue_folder(tmp_path / "glue"), text_column="sentence", ood_source=None,
                    validation_size=10, test_size=100, max_length=32)
    data = prepare_data(spec, tiny_model, 50)
    prov = data.provenance
    assert data.num_labels == 2 and prov["unlabelled_dropped"] == 30
    assert prov["split_origin"]["mode"] == "official"
    assert prov["split_origin"]["test"].startswith("official validation split, used as test")
    assert "carved from official train" in prov["split_origin"]["validation"]
    assert prov["split_sizes"] == {"train_pool": 110, "validation": 10, "test": 40}
    assert any("unlabelled" in n for n in data.notes) and any("official splits kept" in n for n in data.notes)


def _three_csvs(folder, overlap=()):
    folder.mkdir()
    write_csv(folder / "train.csv", make_rows(200, seed=1) + list(overlap))
    write_csv(folder / "validation.csv", make_rows(40, seed=2))
    write_csv(folder / "test.csv", make_rows(30, seed=3) + list(overlap))
    return str(folder)


def test_official_validation_and_test_are_kept_and_resplit_pools(tmp_path):
    data = load_source(_three_csvs(tmp_path / "ds"), "text", "label")
    texts = np.array(data.texts)
    split = split_data(data, 42, 200, 800, resplit=False)
    assert set(texts[split.test]) == set(texts[data.splits["test"]]) and len(split.test) == 30
    assert set(texts[split.validation]) == set(texts[data.splits["validation"]])
    assert set(split.train_pool) == set(data.splits["train"])
    assert split.origin == {"mode": "official", "train_pool": "official train", "validation": "official "
                            "validation split", "test": "official test split"}
    pooled = split_data(data, 42, 20, 50, resplit=True)
    assert pooled.origin["mode"].startswith("seeded (--resplit")
    assert not set(pooled.test) <= set(data.splits["test"])  # drawn from every split
    assert len(pooled.test) == 50


def test_official_test_larger_than_asked_is_sampled(tmp_path):
    data = load_source(_three_csvs(tmp_path / "ds"), "text", "label")
    split = split_data(data, 42, 20, 10, resplit=False)
    assert len(split.test) == 10 and set(split.test) <= set(data.splits["test"])
    assert "sample of 10 of its 30 rows" in split.origin["test"]


def test_single_file_is_seeded(tmp_path):
    data = load_source(str(write_csv(tmp_path / "d.csv", make_rows(100))), "text", "label")
    assert data.splits is None
    assert split_data(data, 1, 10, 20, resplit=False).origin["mode"] == "seeded"


# --- duplicates ------------------------------------------------------------------------------------------


def _sides(data, split):
    texts = np.array(data.texts, dtype=object)
    return [set(texts[idx]) for idx in (split.train_pool, split.validation, split.test)]


def test_seeded_split_keeps_equal_texts_on_one_side(tmp_path):
    rows = make_rows(300)
    rows += [rows[i] for i in range(0, 300, 3)] * 2  # 100 texts now appear three times
    rows += [("a contested review", "positive"), ("a contested review", "negative")]
    data = load_source(str(write_csv(tmp_path / "d.csv", rows)), "text", "label")
    for seed in range(5):
        split = make_split(data, seed, 40, 60)
        train, val, test = _sides(data, split)
        assert not (train & val) and not (train & test) and not (val & test)
        assert "a contested review" in train  # conflicting labels: training side only
        assert len(split.test) == 60 and len(split.validation) == 40
        assert split.duplicates["repeated_texts"] >= 100 and split.duplicates["conflicting_label_texts"] == 1
        assert len(split.train_pool) + 100 == len(data)


def test_official_splits_drop_train_texts_seen_in_test(tmp_path):
    overlap = [("the very same sentence", "positive"), ("another shared one", "negative")]
    data = load_source(_three_csvs(tmp_path / "ds", overlap), "text", "label")
    split = split_data(data, 42, 200, 800, resplit=False)
    train, val, test = _sides(data, split)
    assert not (train & test) and not (train & val) and not (val & test)
    assert {"the very same sentence", "another shared one"} <= test
    assert split.duplicates["duplicate_rows_dropped_from_train"] == 2


# --- OOD labels by name ----------------------------------------------------------------------------------


def test_embedded_ood_names_match_the_task():
    assert embedded_ood_dataset().label_names == embedded_dataset().label_names


def test_ood_labels_are_matched_by_name_not_position(tmp_path, tiny_model):
    task = [(t, "good" if lab == "positive" else "bad") for t, lab in make_rows(300)]
    ood = [(t, "good" if lab == "positive" else "terrible") for t, lab in make_rows(60, seed=5)]
    spec = DataSpec(source=str(write_csv(tmp_path / "task.csv", task)),
                    ood_source=str(write_csv(tmp_path / "ood.csv", ood)), validation_size=20, test_size=40,
                    ood_size=60, max_length=32, ood_label_map="terrible=bad")
    data = prepare_data(spec, tiny_model, 50)
    assert data.label_names == ["bad", "good"]
    # "good" sorts first among the OOD names; by position it would have become "bad"
    ood_data = load_source(str(tmp_path / "ood.csv"), "text", "label")
    relabelled, used = match_ood_labels(ood_data, ["bad", "good"], spec.ood_label_map)
    assert used == {"good": "good", "terrible": "bad"}
    for text, lab in zip(relabelled.texts, relabelled.labels, strict=True):
        assert (lab == 1) == any(w in text.split() for w in POSITIVE)
    assert data.provenance["ood_class_counts"] == {"bad": 30, "good": 30}


def test_unmatched_ood_labels_stop_the_run(tmp_path):
    path = write_csv(tmp_path / "ood.csv", make_rows(30, labels=("pos", "neg")))
    ood = load_source(str(path), "text", "label")
    with pytest.raises(PeftbenchError, match=r"'neg', 'pos' match no task label \(task labels: negative, "
                                             r"positive\)"):
        match_ood_labels(ood, ["negative", "positive"], None)
    with pytest.raises(PeftbenchError, match="'good', which the task does not have"):
        match_ood_labels(ood, ["negative", "positive"], (("pos", "good"),))


def test_ood_label_map_can_drop_a_label(tmp_path):
    rows = make_rows(30, labels=("pos", "neg", "neutral"))
    ood = load_source(str(write_csv(tmp_path / "ood.csv", rows)), "text", "label")
    label_map = DataSpec(ood_label_map="pos=positive, neg=negative, neutral=").ood_label_map
    relabelled, used = match_ood_labels(ood, ["negative", "positive"], label_map)
    assert len(relabelled) == 20 and used["neutral"] == "" and relabelled.dropped["by_label_map"] == 10
    assert relabelled.label_names == ["negative", "positive"]


def test_integer_labels_match_by_code_when_confirmed(tmp_path):
    rows = [(t, int(lab == "positive")) for t, lab in make_rows(20)]
    ood = load_source(str(write_csv(tmp_path / "ood.csv", rows)), "text", "label")
    relabelled, used = match_ood_labels(ood, ["0", "1"], None, same_codes=True)
    assert used == {"0": "0", "1": "1"} and np.array_equal(relabelled.labels, ood.labels)


def test_label_map_hashes_and_round_trips(tmp_path):
    a = DataSpec(ood_label_map={"pos": "positive", "neg": "negative"})
    b = DataSpec(ood_label_map="neg=negative,pos=positive")
    assert a == b and hash(a) == hash(b) and a.ood_label_map == (("neg", "negative"), ("pos", "positive"))
    trial = TrialSpec(study="s", method=MethodSpec(name="BitFit", family="bitfit"), data=a)
    again = TrialSpec.from_dict(json.loads(json.dumps(trial.to_dict())))
    assert again.trial_id == trial.trial_id and hash(again.data) == hash(a)
    assert TrialSpec(study="s", method=trial.method, data=DataSpec(resplit=True)).trial_id != \
        TrialSpec(study="s", method=trial.method).trial_id
    with pytest.raises(PeftbenchError, match="not OOD=TASK"):
        DataSpec(ood_label_map="pos:positive")


def test_config_file_and_cli_wiring(tmp_path):
    from peftbench.studies.settings import study_options_from

    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("resplit: true\nood_label_map: {pos: positive, neutral: null}\n")
    cfg = load_config_file(cfg_path)
    unset = ("preset", "model", "text_column", "label_column", "methods", "train_size", "epochs",
             "batch_size", "seeds", "max_length", "device", "learning_rate", "ood_text_column", "ood_label_column")
    kw = {**dict.fromkeys(unset), "dataset": "x.csv", "ood_dataset": "o.csv", "no_ood": False, "bf16": False}
    data = study_options_from(kw, cfg).data
    assert data.resplit is True and data.ood_label_map == (("neutral", ""), ("pos", "positive"))
    data = study_options_from({**kw, "resplit": True, "ood_label_map": "pos=positive"}).data
    assert data.resplit and data.ood_label_map == (("pos", "positive"),)
    assert study_options_from(kw).data.resplit is False
