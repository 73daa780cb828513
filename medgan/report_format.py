"""How numbers look in every Markdown report and console table: one set of formatters.

A missing value (an AUC undefined for a class without positives, a CI of a
point that has none) prints as `MISSING`; p-values print with four decimals
and as "< 0.0001" below that, the way a reader quotes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

MISSING = "n/a"
P_FLOOR = 1e-4


def number(value: Any, digits: int = 3) -> str:
    """`value` with `digits` decimals, or MISSING for None."""
    return MISSING if value is None else f"{value:.{digits}f}"


def interval(low: Any, high: Any, digits: int = 3) -> str:
    """"[low, high]", or MISSING when either end is None."""
    return MISSING if low is None or high is None else f"[{low:.{digits}f}, {high:.{digits}f}]"


def p_value(p: Any) -> str:
    """A p-value as people read it: 4 decimals, "< 0.0001" below that, MISSING for None."""
    if p is None:
        return MISSING
    return f"< {P_FLOOR:.4f}" if p < P_FLOOR else f"{p:.4f}"


def axis(value: Any) -> str:
    """A fold axis k or n: "all" for 0 (every combination kept, or the unbalanced fold's every image)."""
    return "all" if value == 0 else str(value)


def p_clause(p: Any) -> str:
    """"p = 0.0312" or "p < 0.0001", for a sentence."""
    text = p_value(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str | None = None) -> list[str]:
    """Lines of a Markdown table; `align` has one character per column, "l" or "r" (default all "l")."""
    align = align or "l" * len(header)
    if len(align) != len(header):
        raise ValueError(f"align {align!r} has {len(align)} columns, the header {len(header)}")
    lines = ["| " + " | ".join(header) + " |", "|" + "".join("---:|" if a == "r" else "---|" for a in align)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells, the header {len(header)}: {list(row)}")
        lines.append("| " + " | ".join(row) + " |")
    return lines
