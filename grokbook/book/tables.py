"""Tables for readers: one formatting helper every chapter uses.

``show(table)`` returns an HTML block (an ``IPython.display.HTML``) of a pandas table as a
reader wants it: no index column, a missing value shown as "—", counts with thousands
separators, FLOPs and other large quantities with units (1.7 TFLOP), fractions to three
places, run ids shortened to 6 hex digits (the full id is in the cell's tooltip), long
text wrapped (never cut), and a table of more than ``fold`` rows collapsed under a toggle
whose summary line says what it holds (the chart beside it is the primary view). The
output is the same text every time (nbval compares it).

``card(items)`` is a definition list (title, then label: text pairs), for evidence too
long for a table cell: nothing is truncated.
"""
from __future__ import annotations

import html
import numbers
import re

import pandas as pd

MISSING = "—"
FOLD = 12                 # tables longer than this are collapsed under a toggle
RUN_ID = re.compile(r"^[0-9a-f]{12}$")
UNITS = {"flops": "FLOP", "flop": "FLOP", "examples": "", "params": ""}
_SI = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))

STYLE = ("<style>.gb-table{border-collapse:collapse;font-size:0.85em;max-width:100%;"
         "display:block;overflow-x:auto}.gb-table td,.gb-table th{padding:2px 8px;"
         "text-align:right;vertical-align:top;white-space:normal;word-break:normal;"
         "overflow-wrap:anywhere;max-width:32em}.gb-table td.text,.gb-table th.text"
         "{text-align:left}.gb-table tr:nth-child(even){background:#f6f6f6}"
         ".gb-card dt{font-weight:600;margin-top:0.6em}.gb-card dd{margin-left:1.2em}"
         "</style>")


def _missing(v) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def si(x: float, unit: str = "") -> str:
    """1.7e12 -> "1.7 TFLOP" (unit "FLOP"); small numbers stay as they are."""
    for scale, prefix in _SI:
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}".strip()
    return f"{x:.3g} {unit}".strip()


def cell(value, column: str = "") -> tuple[str, bool]:
    """(the text a reader sees, whether it is text rather than a number)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v, column)[0] for v in value), True
    if _missing(value):
        return MISSING, False
    if isinstance(value, bool):
        return ("yes" if value else "no"), True
    if isinstance(value, str):
        if RUN_ID.match(value):
            return value[:6], True
        return value, True
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}", False
    if isinstance(value, numbers.Real):
        x = float(value)
        unit = next((u for k, u in UNITS.items() if k in column.lower()), None)
        if unit is not None and abs(x) >= 1e4:
            return si(x, unit), False
        if x.is_integer() and abs(x) >= 1:
            return f"{int(x):,}", False
        if abs(x) >= 1e4:
            return f"{x:,.0f}", False
        return (f"{x:.3f}" if abs(x) < 1 else f"{x:.3g}"), False
    return str(value), True


def to_html(table: pd.DataFrame) -> str:
    """The table's HTML (no index; formatted cells; full run ids in tooltips)."""
    t = table.reset_index(drop=True) if not isinstance(table.index, pd.RangeIndex) \
        else table
    cols = list(t.columns)
    text_cols = set()
    body = []
    for row in t.itertuples(index=False):
        tds = []
        for col, v in zip(cols, row):
            shown, is_text = cell(v, str(col))
            if is_text:
                text_cols.add(col)
            tip = f' title="{html.escape(v)}"' if isinstance(v, str) and RUN_ID.match(v) \
                else ""
            tds.append((col, f"<td{{cls}}{tip}>{html.escape(shown)}</td>"))
        body.append(tds)
    text = ' class="text"'
    head = "".join(f"<th{text if c in text_cols else ''}>{html.escape(str(c))}</th>"
                   for c in cols)
    rows = "".join("<tr>" + "".join(td.replace("{cls}", text if c in text_cols else "")
                                    for c, td in tds) + "</tr>" for tds in body)
    return f'<table class="gb-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def show(table: pd.DataFrame, title: str = "", fold: int = FOLD, columns=None):
    """The table for a reader (``columns``: which, in order), collapsed under a toggle
    when it has more than ``fold`` rows."""
    from IPython.display import HTML
    if columns is not None:
        table = table[[c for c in columns if c in table]]
    inner = to_html(table)
    n = len(table)
    if n > fold:
        what = title or "the table"
        inner = (f"<details><summary>{html.escape(what)}: {n} rows (click to open)"
                 f"</summary>{inner}</details>")
    elif title:
        inner = f"<p><b>{html.escape(title)}</b></p>{inner}"
    return HTML(STYLE + inner)


def card(title: str, items):
    """A definition list: ``title``, then each (label, text) in full."""
    from IPython.display import HTML
    dl = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>"
                 for k, v in items)
    return HTML(f'{STYLE}<div class="gb-card"><h4>{html.escape(title)}</h4><dl>{dl}</dl></div>')
