"""The page every section writes into, and the HTML pieces they share: escaping, tables, plots.

Every string that comes from the store or the user goes through esc (html.escape).
"""

from __future__ import annotations

import html
import math
import re

from peftbench.report import plots


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


class Page:
    """Collects HTML parts and rendered plots; plots are referenced by name for their PNG file."""

    def __init__(self, png_folder: str):
        self.parts: list[str] = []
        self.pngs: dict[str, bytes] = {}
        self.png_folder = png_folder

    def add(self, text: str) -> None:
        self.parts.append(text)

    def plot(self, name: str, caption: str, fig, wide: bool = False) -> str:
        rendered = plots.render(fig)
        self.pngs[name] = rendered.png
        return (f'<figure class="plot{" wide" if wide else ""}" id="plot-{esc(name)}">{rendered.svg}'
                f'<figcaption>{esc(caption)} (<a href="{esc(self.png_folder)}/{esc(name)}.png">PNG</a>)'
                "</figcaption></figure>")

    def not_run(self, what: str) -> None:
        self.add(f'<p class="note">{esc(what)}</p>')


def num(value: object, fmt: str = "{:.3f}") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


NUMERIC = re.compile(r"^(-|#?[-+]?[\d,]*\.?\d+(e[-+]?\d+)?%?( ± [\d.,]+)?( \[[\d.,]+-[\d.,]+\])?( pts)?"
                     r"( \(no CI\))?( \*)?)$")


def table_html(header: list[str], rows: list[list[str]]) -> str:
    """Cells are escaped here: pass plain text. Columns of numbers align right, others left."""
    classes = ["" if all(NUMERIC.match(r[i]) for r in rows) else " class='t'" for i in range(len(header))]
    head = "".join(f"<th{c}>{esc(h)}</th>" for h, c in zip(header, classes))
    body = "".join("<tr>" + "".join(f"<td{c}>{esc(text)}</td>" for text, c in zip(row, classes)) + "</tr>"
                   for row in rows)
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
