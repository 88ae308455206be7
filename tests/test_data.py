"""Data sources, the seeded stratified split, nested subsets, and length-bucketed batches."""

import json

import numpy as np
import pandas as pd
import pytest

from peftbench.config import DataSpec
from peftbench.data.prepared import collate, num_train_batches, prepare_data, train_batches
from peftbench.data.sources import embedded_dataset, embedded_ood_dataset, load_source
from peftbench.data.split import content_hash, make_split, stratified_order
from peftbench.errors import PeftbenchError

from conftest import make_rows, write_csv


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
    assert set(data.perturbed) == {"typo", "word_dropout", "word_swap", "case"}
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
