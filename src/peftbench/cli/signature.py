"""Declared options (cli/options.py) as typer parameters. typer reads a command's parameters from its
signature, so `with_options` writes the declared ones into `__signature__` and hands their values to the
command as one dict: a command lists its option groups instead of forty parameters."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

import typer

from peftbench.studies.options import DB, MODEL, TRACKING_URI, Opt


def typer_option(opt: Opt) -> Any:
    return typer.Option(opt.default, opt.cli_flag, help=opt.help)


DB_OPTION = typer_option(DB)
MODEL_OPTION = typer_option(MODEL)
TRACKING_URI_OPTION = typer_option(TRACKING_URI)


def with_options(*groups: Iterable[Opt], into: str = "options") -> Callable:
    """Add every option of `groups` to the decorated command, which receives their values as one dict (its
    parameter `into`), keyed by Opt.key; choices arrive as plain strings."""
    declared = [opt for group in groups for opt in group]

    def decorate(func: Callable) -> Callable:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != into]
        added = [inspect.Parameter(o.key, inspect.Parameter.KEYWORD_ONLY, default=typer_option(o),
                                   annotation=o.annotation) for o in declared]
        clash = {p.name for p in own} & {p.name for p in added}
        if clash:
            raise TypeError(f"{func.__name__} declares {', '.join(sorted(clash))} twice")

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            values = {o.key: _plain(kwargs.pop(o.key)) for o in declared}
            return func(**kwargs, **{into: values})

        command.__signature__ = inspect.Signature(own + added)  # real types: typer evaluates no strings here
        command.__annotations__ = {p.name: p.annotation for p in own + added}
        return command

    return decorate


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value
