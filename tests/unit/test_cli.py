"""The `streamtrain` command: arguments, bad manifests, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workload.cli import build_parser


def streamtrain(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workload.cli", *arguments], capture_output=True,
                          text=True, timeout=120, env=env, check=False)


def test_every_command_is_offered() -> None:
    help_text = build_parser().format_help()
    for command in ("kafka", "produce", "run", "run-mode", "demo"):
        assert command in help_text


def test_a_manifest_with_a_bad_field_exits_2_naming_the_field(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("apiVersion: streamtrain.dev/v1alpha1\nkind: StreamingTrainingJob\n"
                   "metadata: {name: bad}\nspec:\n  kafka: {bootstrapServers: '127.0.0.1:9'}\n"
                   "  train: {epochs: -3}\n")
    result = streamtrain("run", str(job))
    assert result.returncode == 2
    assert "spec.train.epochs: Input should be greater than or equal to 1" in result.stderr


def test_a_missing_manifest_exits_2(tmp_path: Path) -> None:
    result = streamtrain("run", str(tmp_path / "nowhere.yaml"))
    assert result.returncode == 2
    assert "nowhere.yaml" in result.stderr


def test_run_mode_without_a_spec_reports_through_the_termination_log(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    env = {"PATH": "/usr/bin:/bin", "STREAMTRAIN_TERMINATION_LOG": str(log)}
    result = streamtrain("run-mode", "train", env=env)
    assert result.returncode == 2
    assert '"ok":false' in log.read_text() and '"reason":"InvalidSpec"' in log.read_text()
    assert "STREAMTRAIN_JOB_SPEC is not set" in log.read_text()


@pytest.mark.parametrize("mode", ["fit", ""])
def test_an_unknown_mode_is_refused(mode: str) -> None:
    assert streamtrain("run-mode", mode).returncode == 2


def test_a_local_run_reads_a_source_job_beside_its_own_folder(tmp_path: Path) -> None:
    from workload.runner import local_folders
    from workload.spec import StreamingTrainingJobSpec, parse_spec

    def spec(source: dict[str, str]) -> StreamingTrainingJobSpec:
        return parse_spec({"kafka": {"bootstrapServers": "k:9092"}, "evaluate": {"topic": "t"},
                           "model": {"source": source}})

    folders = local_folders(spec({"job": "first"}), tmp_path / "out" / "second")
    assert folders.root == tmp_path / "out" / "second"
    assert folders.source_model == tmp_path / "out" / "first" / "model.keras"
    chosen = local_folders(spec({"job": "first"}), tmp_path / "x", tmp_path / "elsewhere")
    assert chosen.source == tmp_path / "elsewhere"
    with pytest.raises(ValueError, match="--source-dir"):
        local_folders(spec({"volumeClaim": "c", "path": "a/b"}), tmp_path / "x")


def test_produce_writes_avro_for_a_binary_family_and_refuses_a_family_with_categories() -> None:
    import argparse

    from workload.cli import produce_layout
    from workload.datagen.families import FAMILIES, data_spec
    from workload.datagen.table import SUSY_COLUMNS

    def asked(family: str) -> argparse.Namespace:
        return argparse.Namespace(format="avro", schema_registry="http://127.0.0.1:8080/apis",
                                  family=family)

    avro = produce_layout(asked("tutorial"), data_spec(FAMILIES["tutorial"]), list(SUSY_COLUMNS))
    assert avro.format == "avro" and avro.label == "key" and avro.columns == list(SUSY_COLUMNS)
    assert avro.schema_registry is not None and avro.schema_registry.url.endswith("/apis")
    tickets = data_spec(FAMILIES["tickets"])
    assert produce_layout(argparse.Namespace(format="csv"), tickets, []) == tickets
    with pytest.raises(SystemExit, match="family 'tickets' is laid out as json"):
        produce_layout(asked("tickets"), tickets, list(FAMILIES["tickets"].columns))
