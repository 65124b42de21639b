"""Avro bodies into columns: the records of one writer schema decoded together, a field at a time.

The batch's values are joined into one byte array; each record keeps a
cursor into it. Each field of the writer's schema is one numpy step over
every record at once: a run of fixed-width fields (e.g. 18 doubles) is one
gather viewed as a structured array, an `int` or `long` a vectorised zigzag
varint, a union reads its branch index and goes on with each branch's
records, arrays and maps loop over their blocks. A column the job reads is
filled where the writer's field lies (`RecordPlan`, from
`workload.data.avro_schema`); a field the writer lacks takes the reader's
default. Only a categorical string is read with Python, one slice per
record.

A record that runs past its end, asks for a negative length, picks a union
branch or enum symbol that does not exist, holds invalid UTF-8 in a string
or leaves bytes over is invalid; one whose value is not what its column
takes is not numeric (or not categorical); one that lacks a column with no
default is missing it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from workload.data.avro_schema import (
    Array,
    Enum,
    Fixed,
    Map,
    Node,
    Primitive,
    Record,
    RecordPlan,
    Union,
    Wanted,
    default_leaves,
)

FIXED_WIDTH = {"null": 0, "boolean": 1, "float": 4, "double": 8}
"""Bytes of the primitive types of fixed width."""

Ints = npt.NDArray[np.int64]
Target = int | dict[str, Wanted] | None
"""What a value is read for: a column, the fields wanted inside it, or nothing (skipped)."""

Slot = tuple[Literal["number", "text"], int]
"""Where a column goes: the numbers table or the texts table, at an index."""

Planner = Callable[[Record, dict[str, Wanted]], RecordPlan]


def category_text(value: Any) -> str | None:
    """A default (or other JSON value) as a category's text: strings as they are, integers and
    booleans as JSON spells them, an integral float as its integer; `None` for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


class Columns:
    """The records of one writer schema being decoded: a cursor per record into the joined
    bytes (`raw`, also as the array `buf`), and what each has given so far."""

    def __init__(self, raw: bytes, buf: npt.NDArray[np.uint8], pos: Ints, end: Ints,
                 slots: list[Slot], plan: Planner, lenient: frozenset[int] = frozenset()) -> None:
        self.raw, self.buf, self.pos, self.end = raw, buf, pos, end
        self.slots, self._plan = slots, plan
        self.lenient = lenient
        """Text slots whose value may be anything: what has no text reads as '' (a multiclass
        label: no class, `unknown_class` later), not as `non_categorical`."""
        n = len(pos)
        self.numbers = np.zeros((n, sum(kind == "number" for kind, _ in slots)), np.float64)
        self.texts = np.full((n, sum(kind == "text" for kind, _ in slots)), "", object)
        self.invalid = np.zeros(n, bool)
        self.not_numeric = np.zeros(n, bool)
        self.not_categorical = np.zeros(n, bool)
        self.missing = np.full(n, len(slots), np.int64)
        """The first missing column of each record (`len(slots)`: none)."""

    def finish(self) -> None:
        """A record whose cursor did not end at its end (bytes left over) is invalid."""
        self.invalid |= self.pos != self.end

    def run(self, node: Node, target: Target, idx: Ints) -> None:
        """Read a value of writer type `node` for the records `idx`, for `target`."""
        if not len(idx):
            return
        if isinstance(node, Union):
            branch = self.varint(idx)
            self.invalid[idx[(branch < 0) | (branch >= len(node.branches))]] = True
            for index, each in enumerate(node.branches):
                self.run(each, target, idx[branch == index])
            return
        if isinstance(target, dict):
            if isinstance(node, Record):
                self.record(node, target, idx)
            else:  # a value where a record was wanted (null, say): its columns are missing
                self.skip(node, idx)
                self._lack([column for entry in target.values() for column in entry.columns()],
                           idx)
            return
        if target is not None and self.slots[target][0] == "text":
            self.text(node, self.slots[target][1], idx)
        elif isinstance(node, Primitive) and target is not None and node.kind in ("int", "long"):
            self.numbers[idx, self.slots[target][1]] = self.varint(idx)
        elif isinstance(node, Primitive) and node.kind in FIXED_WIDTH:
            self.fixed_run([(node.kind, target)], idx)
        else:
            self.skip(node, idx)
            if target is not None:
                self.not_numeric[idx] = True

    def record(self, node: Record, want: dict[str, Wanted], idx: Ints) -> None:
        """A record's fields in order (fixed-width ones read in runs), then the wanted fields it
        lacks: the reader's default, or missing."""
        plan = self._plan(node, want)
        run: list[tuple[str, int | None]] = []
        for kind, target in plan.steps:
            if isinstance(kind, Primitive) and kind.kind in FIXED_WIDTH and (
                    target is None or (isinstance(target, int)
                                       and self.slots[target][0] == "number")):
                run.append((kind.kind, target))
                continue
            self.fixed_run(run, idx)
            run = []
            self.run(kind, target, idx)
        self.fixed_run(run, idx)
        for entry in plan.absent:
            if not entry.field.has_default:
                self._lack(entry.columns(), idx)
                continue
            values, lacking = default_leaves(entry, entry.field.default)
            for column, value in values.items():
                self._default(column, value, idx)
            if lacking:
                self._lack(sorted(lacking), idx)

    def _default(self, column: int, value: Any, idx: Ints) -> None:
        kind, slot = self.slots[column]
        if kind == "text":
            text = category_text(value)
            if text is not None:
                self.texts[idx, slot] = text
            elif slot not in self.lenient:
                self.not_categorical[idx] = True
        elif isinstance(value, bool | int | float):
            self.numbers[idx, slot] = float(value)
        else:
            self.not_numeric[idx] = True

    def fixed_run(self, run: list[tuple[str, int | None]], idx: Ints) -> None:
        """Fields of fixed width one after the other: one gather of their bytes for every record,
        viewed as a structured array (no copy per field)."""
        width = sum(FIXED_WIDTH[kind] for kind, _ in run)
        if not run or not len(idx):
            return
        full = len(idx) == len(self.pos)  # idx is then every record, in order
        names: list[str] = []
        formats: list[str] = []
        offsets: list[int] = []
        slots: list[int] = []
        offset = 0
        for kind, target in run:
            if kind == "boolean" or (target is not None and kind != "null"):
                names.append(f"f{len(names)}")
                formats.append({"boolean": "u1", "float": "<f4", "double": "<f8"}[kind])
                offsets.append(offset)
                slots.append(-1 if target is None else self.slots[target][1])
            elif target is not None:  # null where a number is wanted
                self.not_numeric[idx] = True
            offset += FIXED_WIDTH[kind]
        if names:
            fields = self.gather(self.pos[idx], width).view(np.dtype(
                {"names": names, "formats": formats, "offsets": offsets, "itemsize": width}))[:, 0]
            for name, fmt, slot in zip(names, formats, slots, strict=True):
                column = fields[name]
                if fmt == "u1":
                    self.invalid[idx[column > 1]] = True
                if slot < 0:
                    continue
                if full:
                    self.numbers[:, slot] = column
                else:
                    self.numbers[idx, slot] = column
        self.advance(idx, width)

    def text(self, node: Node, slot: int, idx: Ints) -> None:
        """A categorical value as text: a string (UTF-8), an enum's symbol, an integer or a
        boolean as JSON spells it, an integral float as its integer; else not categorical."""
        if isinstance(node, Enum):
            symbol = self.varint(idx)
            bad = (symbol < 0) | (symbol >= len(node.symbols))
            self.invalid[idx[bad]] = True
            self.texts[idx[~bad], slot] = np.asarray(node.symbols, object)[symbol[~bad]]
            return
        kind = node.kind if isinstance(node, Primitive) else ""
        if kind == "string":
            size = self.varint(idx)
            start = self.pos[idx].copy()
            self.advance(idx, size, checked=True)
            ok = ~self.invalid[idx]
            for row, first, length in zip(idx[ok].tolist(), start[ok].tolist(),
                                          size[ok].tolist(), strict=True):
                try:
                    self.texts[row, slot] = self.raw[first:first + length].decode("utf-8")
                except UnicodeDecodeError:
                    self.invalid[row] = True
        elif kind in ("int", "long"):
            self.texts[idx, slot] = self.varint(idx).astype(str).astype(object)
        elif kind == "boolean":
            flag = self.gather(self.pos[idx], 1)[:, 0]
            self.invalid[idx[flag > 1]] = True
            self.texts[idx, slot] = np.where(flag == 1, "true", "false").astype(object)
            self.advance(idx, 1)
        elif kind in ("float", "double"):
            width = FIXED_WIDTH[kind]
            value = self.gather(self.pos[idx], width).view(
                "<f4" if kind == "float" else "<f8")[:, 0].astype(np.float64)
            self.advance(idx, width)
            with np.errstate(invalid="ignore"):
                integral = np.isfinite(value) & (value == np.floor(value))
            self.texts[idx[integral], slot] = [str(int(each)) for each in value[integral]]
            if slot not in self.lenient:
                self.not_categorical[idx[~integral]] = True
        else:  # null, bytes, fixed, records, arrays, maps
            self.skip(node, idx)
            if slot not in self.lenient:
                self.not_categorical[idx] = True

    def skip(self, node: Node, idx: Ints) -> None:
        """Read past a value of `node` that no column needs."""
        if not len(idx):
            return
        if isinstance(node, Primitive):
            if node.kind in FIXED_WIDTH:
                self.advance(idx, FIXED_WIDTH[node.kind])
            elif node.kind in ("int", "long"):
                self.varint(idx)
            else:  # bytes, string
                self.advance(idx, self.varint(idx), checked=True)
        elif isinstance(node, Fixed):
            self.advance(idx, node.size)
        elif isinstance(node, Enum):
            symbol = self.varint(idx)
            self.invalid[idx[(symbol < 0) | (symbol >= len(node.symbols))]] = True
        elif isinstance(node, Record):
            for each in node.fields:
                self.skip(each.type, idx)
        elif isinstance(node, Union):
            self.run(node, None, idx)
        else:
            self.blocks(node, idx)

    def blocks(self, node: Array | Map, idx: Ints) -> None:
        """Arrays and maps: blocks of a count and items, until a count of 0. A negative count is
        followed by the block's size in bytes, which skips it whole."""
        item = node.items if isinstance(node, Array) else node.values
        empty = isinstance(node, Array) and zero_width(item)
        while len(idx):
            count = self.varint(idx)
            sized = count < 0
            if sized.any():
                self.advance(idx[sized], self.varint(idx[sized]), checked=True)
            items, wanted_items = idx[count > 0], count[count > 0]
            if not empty:  # each item takes a byte or more: more than are left is invalid
                too_many = wanted_items > self.end[items] - self.pos[items]
                self.invalid[items[too_many]] = True
                items, wanted_items = items[~too_many], wanted_items[~too_many]
                for index in range(int(wanted_items.max()) if len(items) else 0):
                    going = items[wanted_items > index]
                    if isinstance(node, Map):
                        self.skip(Primitive("string"), going)
                    self.skip(item, going)
            idx = idx[(count != 0) & ~self.invalid[idx]]

    def varint(self, idx: Ints) -> Ints:
        """A zigzag varint (Avro's int and long) per record; advances the cursors."""
        start = self.pos[idx]
        value = np.zeros(len(idx), np.uint64)
        size = np.zeros(len(idx), np.int64)
        going = np.arange(len(idx))
        for index in range(10):
            byte = np.take(self.buf, start[going] + index, mode="clip").astype(np.uint64)
            value[going] |= (byte & np.uint64(0x7F)) << np.uint64(7 * index)
            size[going] = index + 1
            going = going[byte >= 0x80]
            if not len(going):
                break
        self.invalid[idx[going]] = True  # more than 10 bytes
        self.advance(idx, size)
        return (value >> np.uint64(1)).astype(np.int64) ^ -(value & np.uint64(1)).astype(np.int64)

    def advance(self, idx: Ints, by: int | Ints, checked: bool = False) -> None:
        """Move the cursors of `idx` on by `by` bytes; a record that runs past its end (or asks
        for a negative length) is invalid and its cursor stays at its end."""
        step = np.asarray(by, np.int64)
        if checked:
            negative = step < 0
            self.invalid[idx[negative]] = True
            step = np.where(negative, 0, step)
        moved = self.pos[idx] + step
        past = moved > self.end[idx]
        self.invalid[idx[past]] = True
        self.pos[idx] = np.where(past, self.end[idx], moved)

    def gather(self, start: Ints, width: int) -> npt.NDArray[np.uint8]:
        """`width` bytes from each of `start`, as a contiguous [len(start), width] array; a start
        too near the end (a truncated record, found invalid by `advance`) reads the last bytes."""
        if len(self.buf) < width:
            padded = np.zeros(width, np.uint8)
            padded[:len(self.buf)] = self.buf
            return np.broadcast_to(padded, (len(start), width)).copy()
        windows = np.lib.stride_tricks.sliding_window_view(self.buf, width)
        return windows[np.minimum(start, len(self.buf) - width)]

    def _lack(self, columns: list[int], idx: Ints) -> None:
        if columns:
            self.missing[idx] = np.minimum(self.missing[idx], min(columns))


def zero_width(node: Node, seen: frozenset[int] = frozenset()) -> bool:
    """Whether a value of `node` takes no bytes (null, or a record of such fields; a record that
    holds itself is not counted as one: such a value cannot be written)."""
    if isinstance(node, Primitive):
        return node.kind == "null"
    return isinstance(node, Record) and id(node) not in seen and all(
        zero_width(each.type, seen | {id(node)}) for each in node.fields)
