"""Export every field of every record: JSON (nested fields kept), CSV or Parquet (nested fields as JSON).

Per-row predictions are exported as stored (compact strings, `peftbench.predictions.decode`), every tuning
candidate too: export is the raw store, the tables are the reportable view.
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


def export_records(records: pd.DataFrame, fmt: str, output: Path | None) -> None:
    """Write atomically (temp file, then rename) so a failed export leaves nothing half-written."""
    if fmt == "parquet" and output is None:
        raise PeftbenchError("parquet export needs --output FILE")
    if output is not None and output.is_dir():
        raise PeftbenchError(f"--output {output} is a directory; give a file name")
    if fmt == "json":
        clean = records.astype(object).where(records.notna(), None)
        text = json.dumps(clean.to_dict(orient="records"), indent=2, default=str)
    elif fmt == "csv":
        # strings quoted: per-row predictions such as "0110" stay text for a careful reader
        text = _flat(records).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC)
    else:
        text = None
    if output is None:
        sys.stdout.write(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    os.close(fd)
    try:
        if text is not None:
            Path(tmp).write_text(text, encoding="utf-8")
        else:
            _flat(records).to_parquet(tmp, index=False)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
