"""Loading the real UCI SUSY file format: plain and gzip, limited, partial, and malformed."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from workload.datagen import synthetic
from workload.datagen.susy import load_susy
from workload.datagen.table import SUSY_COLUMNS


def susy_text(rows: int, seed: int = 1) -> tuple[str, synthetic.SusyData]:
    """Rows written exactly as UCI writes them: `%.18e`, class first, no header."""
    data = synthetic.generate(rows, seed)
    table = np.column_stack([data.labels.astype(np.float64), data.features.astype(np.float64)])
    lines = [",".join(f"{value:.18e}" for value in row) for row in table.tolist()]
    return "\n".join(lines) + "\n", data


def assert_rows_equal(loaded: synthetic.SusyData, expected: synthetic.SusyData) -> None:
    assert loaded.columns == SUSY_COLUMNS
    assert np.array_equal(loaded.labels, expected.labels)
    assert np.array_equal(loaded.features, expected.features)


def test_reads_a_plain_csv(tmp_path: Path) -> None:
    text, data = susy_text(300)
    path = tmp_path / "SUSY.csv"
    path.write_text(text)
    assert text.startswith(("1.000000000000000000e+00,", "0.000000000000000000e+00,"))
    assert_rows_equal(load_susy(path), data)


def test_reads_a_gzip_file_and_stops_at_the_requested_rows(tmp_path: Path) -> None:
    text, data = susy_text(300)
    path = tmp_path / "SUSY.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    assert_rows_equal(load_susy(path), data)
    assert_rows_equal(load_susy(path, rows=120), data.slice(0, 120))


def test_a_csv_cut_mid_line_yields_the_complete_lines_only(tmp_path: Path) -> None:
    text, data = susy_text(50)
    cut = text.index("\n", len(text) // 2) + 30  # 30 characters into the next line
    path = tmp_path / "SUSY.csv"
    path.write_text(text[:cut])
    complete = text[:cut].count("\n")
    assert_rows_equal(load_susy(path), data.slice(0, complete))


def test_a_truncated_gzip_stream_yields_the_complete_lines_only(tmp_path: Path) -> None:
    text, data = susy_text(2000)
    packed = gzip.compress(text.encode())
    path = tmp_path / "SUSY.csv.gz"
    path.write_bytes(packed[: len(packed) // 2])
    loaded = load_susy(path)
    assert 0 < loaded.rows < 2000
    assert_rows_equal(loaded, data.slice(0, loaded.rows))


def test_a_file_with_a_bad_class_or_width_is_refused_with_the_line(tmp_path: Path) -> None:
    text, _ = susy_text(5)
    lines = text.splitlines()
    path = tmp_path / "SUSY.csv"
    path.write_text("\n".join([*lines[:3], "2" + lines[3][1:], lines[4]]) + "\n")
    with pytest.raises(ValueError, match="line 4: class must be 0 or 1"):
        load_susy(path)
    path.write_text(lines[0] + ",1.0\n")
    with pytest.raises(ValueError, match="expected 19 values"):
        load_susy(path)
    path.write_text("")
    with pytest.raises(ValueError, match="no complete rows"):
        load_susy(path)
