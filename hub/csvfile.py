"""CSV for people's spreadsheets, streamed one line at a time.

RFC 4180: every field quoted, quotes doubled, lines ended by CRLF, one header
row. Values often come from callers (patient ids, user names, station
names), so each cell is made safe for spreadsheets (OWASP "CSV Injection"):
a cell that begins with =, +, -, @, a tab or a carriage return gets a
leading single quote, so it is shown as text and never evaluated.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


class _Line:
    """A file-like target that hands back what the csv writer wrote: one formatted line."""

    def write(self, line: str) -> str:
        return line


def safe_cell(value: object) -> str:
    """`value` as text, with a leading single quote when a spreadsheet would take it for a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """The header line, then one line per row, each ending in CRLF."""
    writer = csv.writer(_Line(), quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    yield str(writer.writerow(header))
    for row in rows:
        yield str(writer.writerow([safe_cell(value) for value in row]))
