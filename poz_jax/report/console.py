"""Console tables: results rows as aligned text, every header as wide as its column.

A study's console summary names the CSV columns it shows
(:func:`summary_table`); each column's header and number format are
written once, here (:data:`HEADERS`), so a column reads the same in every
study's summary and means what ``docs/results-files.md`` says.
"""

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


# Columns printed as text (left-aligned); every other column is a number.
TEXT = frozenset({"set", "layer", "method", "items", "target", "model", "quantity", "network"})

# column: (header, format, scale, suffix)
HEADERS: dict[str, tuple[str, str, float, str]] = {
    "keep_count": ("kept", "d", 1, ""),
    "keep_fraction": ("% kept", ".0f", 100, "%"),
    "fit_mean": ("fit mean", ".4f", 1, ""),
    "fit_sd": ("fit sd", ".4f", 1, ""),
    "max_poz_mean": ("max PoZ kept", ".1f", 100, "%"),
    "max_poz_sd": ("max PoZ sd", ".1f", 100, "%"),
    "share_poz_above_80": ("PoZ > 80%", ".1f", 100, "%"),
    "unpruned_fit": ("unpruned fit", ".4f", 1, ""),
    "best_fit": ("best fit", ".4f", 1, ""),
    "best_percent_kept": ("best at % kept", ".1f", 1, "%"),
    "improvement": ("gain", ".4f", 1, ""),
    "p_improvement": ("p (gain)", ".4f", 1, ""),
    "trend_slope_per_percent": ("trend slope", ".2e", 1, ""),
    "p_trend": ("p (trend)", ".4f", 1, ""),
    "unpruned_fit_of_ceiling": ("of ceiling", ".4f", 1, ""),
    "fit_out_of_sample_mean": ("out-of-sample fit", ".4f", 1, ""),
    "fit_out_of_sample_sd": ("out-of-sample sd", ".4f", 1, ""),
    "fit_in_sample": ("in-sample fit", ".4f", 1, ""),
    "percent_kept_mean": ("mean % kept", ".1f", 1, "%"),
    "minus_unpruned_mean": ("vs unpruned", "+.4f", 1, ""),
    "p_corrected": ("p (corrected)", ".4f", 1, ""),
    "mean": ("mean", ".4f", 1, ""),
    "interval_low": ("95% low", ".4f", 1, ""),
    "interval_high": ("95% high", ".4f", 1, ""),
    "p": ("p", ".4f", 1, ""),
    "noise_ceiling_lower": ("ceiling low", ".4f", 1, ""),
    "noise_ceiling_upper": ("ceiling high", ".4f", 1, ""),
    "parameters_kept": ("params kept", ".3f", 1, ""),
    "accuracy_before_mean": ("acc trimmed", ".4f", 1, ""),
    "accuracy_after_mean": ("acc tuned", ".4f", 1, ""),
    "accuracy_after_minus_control_mean": ("vs control", "+.4f", 1, ""),
    "fit_untrimmed_after_mean": ("fit untrimmed", ".3f", 1, ""),
    "fit_human_after_mean": ("fit human", ".3f", 1, ""),
}


def summary_table(rows: Sequence[dict], columns: str | Sequence[str], note: str = "") -> str:
    """``rows`` as a text table of ``columns`` (CSV column names, or one string of them
    separated by spaces), each under its :data:`HEADERS` header in its format; ``note``,
    if given, on a line below."""
    names = columns.split() if isinstance(columns, str) else list(columns)
    spec: list[Column] = []
    for name in names:
        if name in TEXT:
            spec.append((name, text(name)))
        elif name in HEADERS:
            header, fmt, scale, suffix = HEADERS[name]
            spec.append((header, number(name, fmt, scale, suffix)))
        else:
            raise KeyError(f"no header for column {name!r}: add it to report.console.HEADERS")
    table = text_table(rows, spec)
    return f"{table}\n{note}" if note else table
