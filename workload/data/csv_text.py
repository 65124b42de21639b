"""What a CSV record's text must look like: the patterns both CSV decoders check.

The TensorFlow decoder (`csv_decode`, RE2 inside the graph) and the numpy one
(`csv_numpy`, Python's `re`) use these same expressions, which mean the same
in both engines. Nothing imported: a process without TensorFlow reads them too.
"""

from __future__ import annotations

from collections.abc import Sequence

NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
"""A decimal number as `decode_csv` parses it; `nan`, `inf` and hex are not numbers here."""

BLANKS = r"[\t\n\f\r ]"
r"""What pads a field: RE2's `\s` spelled out (Python's `\s` also takes a vertical tab)."""

CSV_FIELD = rf"{BLANKS}*{NUMBER}{BLANKS}*"
"""One CSV field: a number, optionally padded with blanks."""

FULL_REGEX_MAX_FIELDS = 256
"""Up to this many CSV fields one regular expression checks a whole record (fast path);
wider records are split and checked field by field (RE2 limits repetition counts)."""


TEXT_FIELD = r'[^,"]*'
"""One categorical (or class name) CSV field: any text without a comma or a double quote."""


def record_pattern(numbers: Sequence[bool]) -> str:
    """One regular expression for a whole CSV record whose columns are numbers (`True`) or text
    (`False`), runs of the same kind as one repetition."""
    runs: list[tuple[bool, int]] = []
    for is_number in numbers:
        if runs and runs[-1][0] == is_number:
            runs[-1] = (is_number, runs[-1][1] + 1)
        else:
            runs.append((is_number, 1))
    parts = []
    for is_number, count in runs:
        field = CSV_FIELD if is_number else TEXT_FIELD
        parts.append(field + (f"(?:,{field}){{{count - 1}}}" if count > 1 else ""))
    return ",".join(parts)
