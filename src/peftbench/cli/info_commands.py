"""`peftbench methods`, `params`, `dimensions` and `fields`: what peftbench offers and measures, without
training."""

from __future__ import annotations

import typer

from peftbench.cli.console import console
from peftbench.cli.signature import MODEL_OPTION
from peftbench.studies.settings import split_list


def methods() -> None:
    """List presets and method families with their options and default learning rates."""
    from peftbench.cli.docs import methods_tables

    for t in methods_tables():
        console.print(t)


def params(model: str = MODEL_OPTION, methods_: str | None = typer.Option(None, "--methods", help="presets/specs (default: all presets)"),
           num_labels: int = typer.Option(2, "--num-labels", help="classes of the head")) -> None:
    """Each method's parameter accounting on a model, without training."""
    from peftbench.report.params_table import params_table

    console.print(params_table(model or "embedded", split_list(methods_), num_labels))


def dimensions() -> None:
    """The six dimensions, their metrics, and exactly how peftbench measures each."""
    from peftbench.cli.docs import dimensions_text

    console.print(dimensions_text())


def fields(group: str | None = typer.Option(None, "--group", help="only this group (identity, parameters, "
                                           "compute, performance, generalization, inference, decoder, ...)")
           ) -> None:
    """Every field of a trial record: its unit, the split it reads and what it means, by group."""
    from rich.table import Table

    from peftbench.errors import PeftbenchError
    from peftbench.record.fields import GROUPS
    from peftbench.record.schema import RECORD_VERSION

    if group is not None and group not in GROUPS:
        raise PeftbenchError(f"unknown group {group!r} (choose from {', '.join(GROUPS)})")
    for name, declared in GROUPS.items():
        if group not in (None, name):
            continue
        table = Table(title=f"{name} (record version {RECORD_VERSION})", title_justify="left")
        for col in ("field", "unit", "split", "meaning"):
            table.add_column(col, no_wrap=col != "meaning")
        for f in declared:
            table.add_row(f.name, f.unit, f.split, f.meaning)
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(methods)
    app.command()(params)
    app.command()(dimensions)
    app.command()(fields)
