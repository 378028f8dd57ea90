"""Tables the chapters display: Markdown built from rows of numbers."""
from __future__ import annotations

import math
from typing import Sequence

__all__ = ["markdown_table"]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], digits: int = 3) -> str:
    """A Markdown table; floats are printed with ``digits`` decimals, NaN as "n/a"; a "|" inside a cell is
    escaped so it cannot split the cell."""
    def cell(v):
        if isinstance(v, float) and math.isnan(v):
            return "n/a"          # a number that does not apply to this row (e.g. the MSE of random latents)
        return (f"{v:.{digits}f}" if isinstance(v, float) else str(v)).replace("|", "\\|")
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)
