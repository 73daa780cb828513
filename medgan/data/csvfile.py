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
    The header may carry a UTF-8 byte-order mark (spreadsheet exports do).

    Raises:
      ValueError: a `required` column is missing, or a row is ragged.
    """
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [name.strip() for name in next(reader, [])]
        missing = [name for name in required if name not in header]
        if missing:
            raise ValueError(
                f"{csv_path}: missing column(s) {', '.join(map(repr, missing))}; "
                f"the header row has {header}"
            )

        def rows() -> Iterator[tuple[int, list[str]]]:
            for row in reader:
                if not row:
                    continue  # a blank line, e.g. at the end of the file
                if len(row) != len(header):
                    raise ValueError(
                        f"{csv_path}, row {reader.line_num}: {len(row)} fields, "
                        f"the header has {len(header)}"
                    )
                yield reader.line_num, row

        yield {name: header.index(name) for name in required}, rows()
