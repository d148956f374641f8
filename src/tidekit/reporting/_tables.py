"""Report tables, each written as CSV, Markdown and LaTeX (booktabs) and shown in the HTML."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidekit._io import atomic_path, write_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Table", "fmt", "to_html", "to_latex", "to_markdown", "write_table"]


@dataclass
class Table:
    """A titled table."""

    key: str
    title: str
    frame: pd.DataFrame
    note: str = ""


def fmt(v: Any, digits: int = 3) -> str:
    """Short text for a cell: floats to ``digits`` significant digits, tiny p-values as <1e-4."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != 0 and abs(v) < 1e-4:
            return f"{v:.1e}"
        return f"{v:.{digits}g}"
    return str(v)


def _cells(t: Table) -> tuple[list[str], list[list[str]]]:
    return [str(c) for c in t.frame.columns], [[fmt(v) for v in row] for row in t.frame.itertuples(index=False)]


def to_markdown(t: Table) -> str:
    head, rows = _cells(t)

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [f"**{t.title}**", "", "| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    if t.note:
        lines += ["", t.note]
    return "\n".join(lines) + "\n"


_LATEX = str.maketrans({"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"})


def to_latex(t: Table) -> str:
    head, rows = _cells(t)
    body = [" & ".join(c.translate(_LATEX) for c in r) + r" \\" for r in rows]
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small",
        r"\begin{tabular}{" + "l" * len(head) + "}", r"\toprule",
        " & ".join(h.translate(_LATEX) for h in head) + r" \\", r"\midrule", *body, r"\bottomrule",
        r"\end{tabular}", r"\caption{" + t.title.translate(_LATEX) + "}",
        r"\label{tab:" + t.key.replace("_", "-") + "}", r"\end{table}"]) + "\n"


def to_html(t: Table, max_rows: int = 200) -> str:
    head, rows = _cells(t)
    more = len(rows) - max_rows
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[:max_rows]]
    out.append("</tbody></table>")
    if more > 0:
        out.append(f"<p class='note'>{more} more rows in tables/{t.key}.csv</p>")
    return "".join(out)


def write_table(t: Table, folder: Path) -> list[Path]:
    """Write ``t`` as CSV, Markdown and LaTeX under ``folder``."""
    csv = folder / f"{t.key}.csv"
    with atomic_path(csv, suffix=".csv") as tmp:
        t.frame.to_csv(tmp, index=False)
    write_text(folder / f"{t.key}.md", to_markdown(t))
    write_text(folder / f"{t.key}.tex", to_latex(t))
    return [csv, folder / f"{t.key}.md", folder / f"{t.key}.tex"]
