"""Loader for the real UCI SUSY data set (`SUSY.csv` or `SUSY.csv.gz`).

The file has no header; each line is the class (`1.000000000000000000e+00`
for signal, `0.000000000000000000e+00` for background) followed by the 18
features in `SUSY_COLUMNS` order. A partial file (an interrupted download,
a truncated gzip stream) is read up to its last complete line: a final line
without its newline is dropped, because a number cut short still parses.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from workload.datagen.table import SUSY_COLUMNS, SusyData

log = logging.getLogger(__name__)

FIELDS = 1 + len(SUSY_COLUMNS)
"""Values per line: the class and 18 features."""

_READ_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def _raw_chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes in chunks, decompressed when it is gzip; a truncated stream just ends."""
    with path.open("rb") as stream:
        head = stream.read(2)
        stream.seek(0)
        if head != _GZIP_MAGIC:
            while chunk := stream.read(_READ_BYTES):
                yield chunk
            return
        inflater = zlib.decompressobj(wbits=31)
        in_member = False
        while compressed := stream.read(_READ_BYTES):
            while compressed:
                in_member = True
                yield inflater.decompress(compressed)
                if not inflater.eof:
                    break
                # A multi-member gzip file: start over on what follows this member.
                compressed = inflater.unused_data
                inflater = zlib.decompressobj(wbits=31)
                in_member = False
        if in_member:
            log.warning("%s: the gzip stream ends early; reading to its last complete line", path)


def _complete_lines(path: Path, limit: int | None) -> Iterator[list[str]]:
    """Batches of complete, non-empty lines, at most `limit` lines in all."""
    pending = b""
    remaining = limit
    for chunk in _raw_chunks(path):
        data = pending + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
            continue
        pending = data[cut + 1 :]
        lines = [line for line in data[:cut].decode("ascii").splitlines() if line.strip()]
        if remaining is not None:
            lines = lines[:remaining]
            remaining -= len(lines)
        if lines:
            yield lines
        if remaining == 0:
            return
    if pending.strip():
        log.warning("%s: dropped an incomplete last line (%d bytes)", path, len(pending))


def _parse(lines: list[str], first_line: int, path: Path) -> npt.NDArray[np.float64]:
    try:
        table = np.loadtxt(lines, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as error:
        last_line = first_line + len(lines) - 1
        raise ValueError(f"{path}: lines {first_line}-{last_line}: {error}") from None
    if table.shape[1] != FIELDS:
        raise ValueError(f"{path}: expected {FIELDS} values per line, found {table.shape[1]}")
    return table


def load_susy(path: str | Path, rows: int | None = None) -> SusyData:
    """The first `rows` rows (all when None) of a SUSY CSV file, plain or gzip-compressed."""
    path = Path(path)
    if rows is not None and rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    tables = []
    line_number = 1
    for lines in _complete_lines(path, rows):
        tables.append(_parse(lines, line_number, path))
        line_number += len(lines)
    if not tables:
        raise ValueError(f"{path}: no complete rows")
    table = np.concatenate(tables)
    classes = table[:, 0]
    if not np.isin(classes, (0.0, 1.0)).all():
        bad = int(np.flatnonzero(~np.isin(classes, (0.0, 1.0)))[0]) + 1
        raise ValueError(f"{path}: line {bad}: class must be 0 or 1, got {classes[bad - 1]!r}")
    return SusyData(table[:, 1:].astype(np.float32), classes.astype(np.int64), SUSY_COLUMNS)
