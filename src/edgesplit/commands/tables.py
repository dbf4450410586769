"""The one table helper of the CLI: engineering notation and tables that fit the terminal.

Numbers. :func:`eng` writes every measured quantity in engineering notation with an SI
prefix and three significant digits, the unit in the cell: ``1.89 ms``, ``602 kB``,
``874 n$``, ``151 mJ``. Exponents are multiples of three (the prefixes n, µ, m, k, M, G,
...), so an 8x difference reads as ``1.58 ms`` beside ``12.7 ms`` instead of two
truncated ``1.5…`` cells. Zero is ``0``, an undefined value (``nan``) ``n/a``, an
infinite one ``inf``. Counts and indices stay plain integers (:func:`count`).

Tables. :func:`make_table` takes the column names and the rows as strings. Number columns
are right-justified, never wrapped and never narrower than their widest cell, so a
number is never cut; columns named in ``text`` are left-justified and fold onto a
second line when the terminal is narrow (never narrower than their header). No vertical
rules: a rule under the header and two spaces between columns, so a table of eight
numbers and a column of marks fits 80 columns.
Every row has exactly one cell per column (a row of another length is a bug, caught
here rather than shown shifted under the wrong header).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from rich import box
from rich.table import Table

_PREFIXES = {
    -18: "a",
    -15: "f",
    -12: "p",
    -9: "n",
    -6: "µ",
    -3: "m",
    0: "",
    3: "k",
    6: "M",
    9: "G",
    12: "T",
    15: "P",
}


def eng(value: float | None, unit: str = "") -> str:
    """``value`` in engineering notation with an SI prefix, e.g. ``eng(0.001894, "s")``
    is ``'1.89 ms'``; ``None`` or ``nan`` is ``'n/a'``.

    >>> eng(0.001894, "s"), eng(602112, "B"), eng(8.742e-07, "$"), eng(0.0), eng(-12.5)
    ('1.89 ms', '602 kB', '874 n$', '0', '-12.5')
    """
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    mantissa, exp10 = f"{abs(value):.2e}".split("e")  # rounded to 3 digits first
    exp = min(max(3 * (int(exp10) // 3), -18), 15)
    scaled = float(mantissa) * 10.0 ** (int(exp10) - exp)
    digits = max(0, 2 - math.floor(math.log10(scaled)))
    text = f"{'-' if value < 0 else ''}{scaled:.{digits}f}"
    suffix = _PREFIXES[exp] + unit
    return f"{text} {suffix}" if suffix else text


def count(value: float | int) -> str:
    """An integer count with thousands separators (``1,024``)."""
    return f"{int(value):,}"


def percent(value: float | None) -> str:
    """A share as a whole percentage (``0.937`` -> ``94 %``); ``n/a`` when undefined."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.0%}".replace("%", " %")


def make_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    text: Collection[str] = (),
    styles: Sequence[str | None] | None = None,
    caption: str | None = None,
) -> Table:
    """A rich table of ``rows`` under ``columns`` (module docstring: layout rules)."""
    table = Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
        caption_justify="left",
    )
    widths = [len(c) for c in columns]
    for r in rows:
        if len(r) != len(columns):
            raise ValueError(
                f"table {title!r}: a row has {len(r)} cells for {len(columns)} columns"
            )
        for i, cell in enumerate(r):
            widths[i] = max(widths[i], max((len(x) for x in cell.split("\n")), default=0))
    for col, width in zip(columns, widths):
        if col in text:
            words = [w for r in rows for w in r[columns.index(col)].split()]
            least = max([len(col), *(min(len(w), 10) for w in words)])
            table.add_column(col, justify="left", overflow="fold", min_width=least)
        else:
            table.add_column(col, justify="right", no_wrap=True, min_width=width)
    for k, r in enumerate(rows):
        table.add_row(*r, style=styles[k] if styles else None)
    return table
