"""Rows as Avro messages in the Confluent wire format, for `streamtrain produce --format avro`.

The schema follows the layout (`DataSpec`): a record with one `float` field
per feature column (the data are float32, so `float` holds them exactly in 4
bytes), a dotted column (`event.pt`) inside a nested record, and the label,
when it is a column, an `int`. Every field has a fixed width except the
label, whose zigzag varint is one byte for 0 and 1, so each row's value is
the same bytes in the same places: the whole chunk is written at once in
numpy, without a Python call per row (as the CSV and JSON writers use
Arrow's kernels). The message key is the label (`0`/`1`) when `label: key`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from workload.datagen.table import SusyData
from workload.spec import DataSpec

RECORD_NAME = "Susy"
NAMESPACE = "dev.streamtrain"


def schema_of(spec: DataSpec) -> dict[str, Any]:
    """The Avro schema of `spec`'s layout (fields in `record_columns` order, nested records
    where a column's name has dots)."""

    def record(name: str, node: dict[str, Any]) -> dict[str, Any]:
        fields = [{"name": key, "type": record(f"{name}_{key}", child) if isinstance(child, dict)
                   else "int" if child == spec.label else "float"} for key, child in node.items()]
        return {"type": "record", "name": name, "fields": fields}

    return {**record(RECORD_NAME, schema_tree(spec)), "namespace": NAMESPACE}


def schema_text(spec: DataSpec) -> str:
    """`schema_of(spec)` as the JSON text a registry stores."""
    return json.dumps(schema_of(spec), separators=(",", ":"))


def written_order(spec: DataSpec) -> list[str]:
    """The columns in the order their values are written: depth first through the nested
    records, which group a record's columns where its first one stands."""
    order: list[str] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, child in node.items():
            if isinstance(child, dict):
                walk(child, f"{prefix}{key}.")
            else:
                order.append(prefix + key)

    walk(schema_tree(spec), "")
    return order


def schema_tree(spec: DataSpec) -> dict[str, Any]:
    """The columns as nested dicts (leaves: the column's name)."""
    tree: dict[str, Any] = {}
    for name in spec.record_columns:
        *parents, leaf = name.split(".")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = name
    return tree


def avro_values(data: SusyData, spec: DataSpec, schema_id: int) -> list[bytes]:
    """Every row as a wire-format value: 0, `schema_id` (big-endian), the body."""
    features = dict(zip(spec.feature_names, range(data.features.shape[1]), strict=True))
    order = written_order(spec)
    widths = [1 if name == spec.label else 4 for name in order]
    size = 5 + sum(widths)
    out = np.empty((data.rows, size), np.uint8)
    out[:, 0] = 0
    out[:, 1:5] = np.frombuffer(int(schema_id).to_bytes(4, "big"), np.uint8)
    offset = 5
    for name, width in zip(order, widths, strict=True):
        if name == spec.label:
            out[:, offset] = data.labels.astype(np.uint8) * 2  # zigzag varint of 0 and 1
        else:
            column = np.ascontiguousarray(data.features[:, features[name]], "<f4")
            out[:, offset:offset + 4] = column.view(np.uint8).reshape(-1, 4)
        offset += width
    flat = out.tobytes()
    return [flat[start:start + size] for start in range(0, len(flat), size)]
