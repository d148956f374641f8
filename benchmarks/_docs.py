"""Writing benchmark figures into docs/benchmarks.md, shared by the benchmarks.

Each benchmark owns one ``## `` section of that file; a run's figures go at the end of its
section (made at the end of the file if absent), never at the end of the file, where they
would land under another benchmark's heading.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), with the core count."""
    info = Path("/proc/cpuinfo")
    name = next((line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
                 if line.startswith("model name")), "") if info.exists() else ""
    return f"{name or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def print_rows(rows: Sequence[tuple[str, str]]) -> None:
    """Print (what, figure) rows as two aligned columns."""
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def markdown_table(rows: Sequence[tuple[str, str]]) -> str:
    return "| what | figure |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows) + "\n"


def append_to_section(header: str, text: str, intro: str = "", path: Path = BENCHMARKS_MD) -> None:
    """Insert ``text`` at the end of the section opened by the line ``header`` (a ``## `` line).

    A missing section is made at the end of the file, with ``intro`` under its heading. The file
    is replaced atomically.
    """
    from tidekit._io import write_text

    doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start = doc.find(f"\n{header}\n")
    if start < 0:
        doc = doc.rstrip("\n") + f"\n\n{header}\n" + (f"\n{intro.strip()}\n" if intro else "")
        start = doc.find(f"\n{header}\n")
    nxt = doc.find("\n## ", start + len(header) + 2)
    cut = len(doc) if nxt < 0 else nxt + 1
    tail = doc[cut:]
    doc = doc[:cut].rstrip("\n") + "\n" + text.rstrip("\n") + "\n" + ("\n" + tail if tail else "")
    write_text(path, doc)
    print(f"appended to {path}")
