"""`peftbench results` and `peftbench export`: read a results store back, as tables or as files."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from peftbench.cli.console import console, err_console
from peftbench.cli.results_view import print_results
from peftbench.cli.signature import DB_OPTION, TRACKING_URI_OPTION
from peftbench.errors import PeftbenchError


def results(db: str | None = DB_OPTION,
            study_name: str | None = typer.Option(None, "--study", help="only this study"),
            failed: bool = typer.Option(False, "--failed", help="list failed/cancelled trials with reasons")) -> None:
    """Print the results tables of a store: one per study and setup, every accuracy with its 95% interval."""
    from peftbench.store.db import Store, default_db_path

    db_path = Path(db) if db else default_db_path()
    if failed:
        with Store(db_path, create=False) as store:
            rows = [r for r in store.rows(study_name) if r["status"] not in ("ok", "pruned")]
        for r in rows:
            first = (r["error"] or "").strip().splitlines()[:1]
            console.print(f"{r['study']}  {r['method']}  seed {r['seed']}  {r['status']}: {first[0] if first else ''}")
        if not rows:
            console.print("no failed or cancelled trials")
        return
    print_results(db_path, study_name)


class ExportFormat(str, Enum):
    json = "json"
    csv = "csv"
    parquet = "parquet"
    mlflow = "mlflow"


FORMAT_OPTION = typer.Option(ExportFormat.json, "--format", help="json | csv | parquet | mlflow")
OUTPUT_OPTION = typer.Option(None, "--output", "-o", help="file to write (default: stdout for json/csv)")
SUMMARY_OPTION = typer.Option(
    False, "--summary",
    help="also write the per-configuration table (the results table: each figure with its 95% interval, "
         "ci_low/ci_high columns and a ci_method column saying how it was computed, seeds, setup) to "
         "FILE.summary.EXT beside -o FILE.EXT; without -o, stdout gets the summary alone. Not for mlflow.")


def export(fmt: ExportFormat = FORMAT_OPTION, output: Path | None = OUTPUT_OPTION,
           db: str | None = DB_OPTION,
           study_name: str | None = typer.Option(None, "--study", help="only this study"),
           include_failed: bool = typer.Option(False, "--include-failed", help="also export failed/cancelled trials"),
           summary: bool = SUMMARY_OPTION,
           tracking_uri: str | None = TRACKING_URI_OPTION) -> None:
    """Export every trial record (all measured fields, provenance included), or log them to MLflow;
    --summary adds the per-configuration table with its intervals."""
    from peftbench.store.db import Store, default_db_path
    from peftbench.store.export import export_records, summary_path

    db_path = Path(db) if db else default_db_path()
    if fmt is ExportFormat.mlflow:
        from peftbench.store.tracking import export_store

        if output is not None:
            raise PeftbenchError("--format mlflow logs to --tracking-uri; it takes no --output")
        if summary:
            raise PeftbenchError("--summary writes a file: use --format json, csv or parquet (MLflow logs one "
                                 "run per trial)")
        count, uri = export_store(db_path, tracking_uri, study_name, include_failed)
        err_console.print(f"{count} trials in MLflow at {uri} (already-logged trials unchanged)", highlight=False)
        return
    if tracking_uri is not None:
        raise PeftbenchError("--tracking-uri is for --format mlflow")
    with Store(db_path, create=False) as store:
        records = store.records(study_name, include_failed=include_failed, roles=False)
        table = None
        if summary:
            from peftbench.report.summary_table import summary_table

            table = summary_table(store.records(study_name))  # what `peftbench results` shows
    export_records(records, fmt.value, output, table)
    if summary and output is not None:
        err_console.print(f"records in {output}, the per-configuration summary in {summary_path(output)}",
                          highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(results)
    app.command()(export)
