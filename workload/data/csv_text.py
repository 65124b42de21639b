"""What a CSV record's text must look like: the patterns both CSV decoders check.

The TensorFlow decoder (`csv_decode`, RE2 inside the graph) and the numpy one
(`csv_numpy`, Python's `re`) use these same expressions, which mean the same
in both engines. No imports: a process without TensorFlow reads them too.
"""

from __future__ import annotations

NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
"""A decimal number as `decode_csv` parses it; `nan`, `inf` and hex are not numbers here."""

BLANKS = r"[\t\n\f\r ]"
r"""What pads a field: RE2's `\s` spelled out (Python's `\s` also takes a vertical tab)."""

CSV_FIELD = rf"{BLANKS}*{NUMBER}{BLANKS}*"
"""One CSV field: a number, optionally padded with blanks."""

FULL_REGEX_MAX_FIELDS = 256
"""Up to this many CSV fields one regular expression checks a whole record (fast path);
wider records are split and checked field by field (RE2 limits repetition counts)."""


def record_pattern(n_fields: int) -> str:
    """One regular expression for a whole CSV record of `n_fields` numbers."""
    return CSV_FIELD + (f"(?:,{CSV_FIELD}){{{n_fields - 1}}}" if n_fields > 1 else "")
