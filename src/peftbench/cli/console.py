"""Where the commands print: tables and answers to stdout, progress and errors to stderr."""

from __future__ import annotations

import sys

from rich.console import Console

# Wide tables stay readable when piped to a file or CI log (no terminal width to fit).
console = Console(width=None if sys.stdout.isatty() else 220)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 220)
