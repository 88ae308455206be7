"""`peftbench methods`, `params` and `dimensions`: what peftbench offers and measures, without training."""

from __future__ import annotations

import typer

from peftbench.cli.console import console
from peftbench.cli.signature import MODEL_OPTION
from peftbench.cli.study_settings import split_list


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


def register(app: typer.Typer) -> None:
    app.command()(methods)
    app.command()(params)
    app.command()(dimensions)
