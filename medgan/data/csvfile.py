"""Reading a cohort's label CSV with errors that name the file, row and column."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator, Sequence
from pathlib import Path


@contextlib.contextmanager
def open_csv(
    csv_path: Path, required: Sequence[str]
) -> Iterator[tuple[dict[str, int], Iterator[tuple[int, list[str]]]]]:
    """Opens `csv_path`, checks its header, yields (column index by name, rows).

    Rows come as (line number of the file, header = 1; fields). Blank lines are
    skipped; a row with the wrong number of fields is an error naming its line.
    The header may carry a UTF-8 byte-order mark and lines may end in CRLF
    (spreadsheet exports do both).

    Bytes that are not UTF-8 and the csv module's own complaints (a field over
    its size limit) become ValueErrors naming the file and the row, so that a
    caller handles one error type for any malformed label file.

    Raises:
      FileNotFoundError: the file does not exist (the message names it).
      ValueError: the file is empty, a `required` column is missing, a row is
        ragged, or the file is not UTF-8 text CSV.
    """
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        with _named(csv_path, reader):
            first = next(reader, None)
        if first is None:
            raise ValueError(
                f"{csv_path}: empty file; expected a header row with the columns {', '.join(required)}"
            )
        header = [name.strip() for name in first]
        missing = [name for name in required if name not in header]
        if missing:
            raise ValueError(
                f"{csv_path}: missing column(s) {', '.join(map(repr, missing))}; "
                f"the header row has {header}"
            )

        def rows() -> Iterator[tuple[int, list[str]]]:
            while True:
                with _named(csv_path, reader):
                    row = next(reader, None)
                if row is None:
                    return
                if not row:
                    continue  # a blank line, e.g. at the end of the file
                if len(row) != len(header):
                    raise ValueError(
                        f"{csv_path}, row {reader.line_num}: {len(row)} fields, "
                        f"the header has {len(header)}"
                    )
                yield reader.line_num, row

        yield {name: header.index(name) for name in required}, rows()


@contextlib.contextmanager
def _named(csv_path: Path, reader) -> Iterator[None]:
    """Re-raises a decoding or csv error as a ValueError naming the file and the row being read.

    The row is approximate for a decoding error: text is decoded in blocks
    ahead of the csv parser, so a bad byte surfaces at the first row of its block.
    """
    try:
        yield
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{csv_path}, near row {reader.line_num + 1}: not UTF-8 CSV text ({err})") from err
