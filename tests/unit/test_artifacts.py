"""Artefact files: JSON written whole, and readable by a pod of another user."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from workload.artifacts import write_json_atomic


def test_a_json_file_is_readable_by_all_as_the_model_beside_it(tmp_path: Path) -> None:
    # A serving pod of another user reads the LiteRT sidecar from a read-only folder.
    target = tmp_path / "model.tflite.json"
    write_json_atomic(target, {"kerasSha256": "ab"})
    write_json_atomic(target, {"kerasSha256": "cd"})  # replaced: not a temporary's 0600
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert json.loads(target.read_text()) == {"kerasSha256": "cd"}
    assert [path.name for path in tmp_path.iterdir()] == [target.name]
