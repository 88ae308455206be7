"""Export every field of every record: JSON (nested fields kept), CSV or Parquet (nested fields as JSON).

Per-row predictions are exported as stored (compact strings, `peftbench.predictions.decode`), every tuning
candidate too: export is the raw store, the tables are the reportable view. `--summary` adds that view as a
file beside the records (report/summary_table.py builds it; this module only writes).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from peftbench.errors import PeftbenchError
from peftbench.store.db import json_default


def _nested(v) -> bool:
    if isinstance(v, (dict, list, tuple)):
        return True
    return isinstance(v, np.ndarray)


def _flat(records: pd.DataFrame) -> pd.DataFrame:
    """Nested fields (provenance, perturbations_skipped, lists) as JSON text; in columns of mixed kinds a
    missing value is None rather than NaN, so Parquet does not refuse e.g. a flag some records lack."""
    out = records.copy()
    for col in out.columns:
        if out[col].map(_nested).any():
            out[col] = out[col].map(lambda v: json.dumps(v, sort_keys=True, default=json_default)
                                    if _nested(v) else v)
        if out[col].dtype == object:
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def summary_path(output: Path) -> Path:
    """Where --summary writes beside `-o FILE.EXT`: FILE.summary.EXT."""
    return output.with_name(f"{output.stem}.summary{output.suffix}")


def _text(frame: pd.DataFrame, fmt: str) -> str | None:
    if fmt == "json":
        clean = frame.astype(object).where(frame.notna(), None)
        return json.dumps(clean.to_dict(orient="records"), indent=2, default=str)
    if fmt == "csv":
        # strings quoted: per-row predictions such as "0110" stay text for a careful reader
        return _flat(frame).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC)
    return None


def _check_target(output: Path) -> None:
    if output.is_dir():
        raise PeftbenchError(f"--output {output} is a directory; give a file name")


def export_records(records: pd.DataFrame, fmt: str, output: Path | None,
                   summary: pd.DataFrame | None = None) -> None:
    """Write atomically (temp files, then rename) so a failed export leaves nothing half-written. With
    `summary` (the per-configuration table), it goes to FILE.summary.EXT beside `output`; with no output
    (json/csv to stdout), stdout gets the summary alone."""
    if fmt == "parquet" and output is None:
        raise PeftbenchError("parquet export needs --output FILE")
    if output is None:
        sys.stdout.write(_text(records if summary is None else summary, fmt))
        return
    targets = [(records, output)] + ([] if summary is None else [(summary, summary_path(output))])
    for _, path in targets:
        _check_target(path)
    output.parent.mkdir(parents=True, exist_ok=True)
    temps: list[str] = []
    try:
        for frame, path in targets:  # every file rendered before any is put in place
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            os.close(fd)
            temps.append(tmp)
            text = _text(frame, fmt)
            if text is not None:
                Path(tmp).write_text(text, encoding="utf-8")
            else:
                _flat(frame).to_parquet(tmp, index=False)
        for tmp, (_, path) in zip(temps, targets):
            os.replace(tmp, path)
    finally:
        for tmp in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)
