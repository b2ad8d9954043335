"""The one Markdown table writer: `compare.md`, the report's Markdown page and the benchmarks' tables.

(The console's side-by-side accuracy table is `evaluator.format_table`, a fixed-width layout for a terminal.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def cell(value: Any, spec: str = "") -> str:
    """One cell: '-' for a missing value, else the value formatted by `spec` (`format(value, spec)`)."""
    return "-" if value is None else format(value, spec)


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; cells are written with `str` (format them with `cell` first where it matters)."""
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
