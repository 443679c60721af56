"""CSV cells that spreadsheets will not run: text starting with = + - @ (or a tab / carriage return)
gets a leading apostrophe, so a file named `=HYPERLINK(...)` shows as text (OWASP's CSV injection advice).
"""
from __future__ import annotations

import csv
from typing import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """`value` unchanged unless it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_rows(handle, header: list[str], rows: Iterable[Iterable]) -> None:
    """Write a header and rows as CSV with every text cell made `spreadsheet_safe`."""
    writer = csv.writer(handle)
    writer.writerow(header)
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
