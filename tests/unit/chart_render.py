"""Rendering the operator chart for tests: documents by kind and name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from localparts import helm

Manifest = dict[str, Any]


@dataclass
class Rendered:
    """The documents one `helm template` produced."""

    documents: list[Manifest]

    def kinds(self) -> list[str]:
        """Every document's kind, in order."""
        return [document["kind"] for document in self.documents]

    def all(self, kind: str) -> list[Manifest]:
        """Every document of ``kind``."""
        return [document for document in self.documents if document["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> Manifest:
        """The single document of ``kind`` (and ``name``); fails when there is not exactly one."""
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]


def render(values: Mapping[str, Any] | None = None, **options: Any) -> Rendered:
    """The chart rendered with ``values`` (raises with helm's message when it refuses)."""
    text = helm.template(values, **options)
    return Rendered([doc for doc in yaml.safe_load_all(text) if doc])
