"""The `peftbench` command: the typer app, its commands (each module registers its own), and `main`, which
turns every user mistake into one line and an exit code."""

from __future__ import annotations

import sys

import typer

from peftbench.cli import analysis_commands, info_commands, plan_commands, run_commands, store_commands
from peftbench.cli.console import err_console
from peftbench.errors import PeftbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure PEFT methods on your model and data, and choose one by the numbers.")
for _commands in (run_commands, plan_commands, store_commands, info_commands, analysis_commands):
    _commands.register(app)


def main() -> None:
    try:
        code = app(standalone_mode=False, prog_name="peftbench")  # not "python -m …" in usage and errors
        if isinstance(code, int) and code:  # typer turns Ctrl-C into a returned 130 in this mode
            if code == 130:
                err_console.print("aborted")
            sys.exit(code)
    except PeftbenchError as exc:
        from rich.markup import escape  # a message may hold brackets: pip install 'peftbench[mlflow]'

        err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors (typer ships its own click, so matched by shape, not class)
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            err_console.print(_usage_line(exc), highlight=False, soft_wrap=True, markup=False)
            sys.exit(exc.exit_code)
        raise


def _usage_line(exc: Exception) -> str:
    """Click's usage block (usage, a 'Try --help' line, a boxed error) as the one line every other mistake
    gets: what is wrong, and where the help is."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    return f"error: {message} (see '{ctx.command_path if ctx is not None else 'peftbench'} --help')"
