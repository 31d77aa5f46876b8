"""Console tables: results rows as aligned text, every header as wide as its column."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

# (header, how to print a row's value)
Column = tuple[str, Callable[[dict], str]]


def number(key: str, spec: str = ".4f", scale: float = 1.0, suffix: str = "") -> Callable:
    """A cell printer: ``row[key] * scale`` in ``spec``, ``suffix`` after; NaN prints as "NaN"."""

    def cell(row: dict) -> str:
        value = row[key]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "NaN"
        return f"{value * scale if scale != 1 else value:{spec}}{suffix}"

    return cell


def text(key: str) -> Callable:
    """A cell printer for a text value (left-aligned in its column)."""

    def cell(row: dict) -> str:
        return str(row[key])

    cell.left = True
    return cell


def text_table(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    """``rows`` as a table: text columns left-aligned, numbers right-aligned.

    Each column is as wide as its widest cell or header, two spaces apart,
    so headers always stand over their numbers.
    """
    cells = [[show(r) for _, show in columns] for r in rows]
    heads = [h for h, _ in columns]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(heads)]

    left = [getattr(show, "left", False) for _, show in columns]

    def line(values):
        padded = (
            v.ljust(w) if lt else v.rjust(w) for v, w, lt in zip(values, widths, left, strict=True)
        )
        return "  ".join(padded).rstrip()

    return "\n".join([line(heads), *(line(c) for c in cells)])
