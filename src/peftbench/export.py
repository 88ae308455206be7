"""Export records as JSON (nested provenance kept), CSV or Parquet (provenance flattened to a JSON string)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

from .errors import PeftbenchError


def _flat(records: pd.DataFrame) -> pd.DataFrame:
    out = records.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, (dict, list))).any():
            out[col] = out[col].map(lambda v: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v)
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
        text = _flat(records).to_csv(index=False)
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
