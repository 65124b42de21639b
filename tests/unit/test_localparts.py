"""Local parts fail with messages a person can act on."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from localparts import kube_build, registry
from localparts.cache import require_tool, run
from localparts.errors import LocalPartError
from localparts.process import spawn, wait_until

REPO = Path(__file__).resolve().parents[2]

UPSTREAM_GO_MOD = """module k8s.io/kubernetes

go 1.25.0

require (
\tk8s.io/api v0.0.0
\tk8s.io/klog/v2 v2.130.1
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)
"""


def test_the_wrapper_module_points_staging_modules_at_published_tags() -> None:
    text = kube_build.wrapper_go_mod(UPSTREAM_GO_MOD, "v1.35.4")
    assert text.startswith("module streamtrain.dev/localparts/kubebuild")
    assert "\tk8s.io/api => k8s.io/api v0.35.4" in text
    assert "\tk8s.io/client-go => k8s.io/client-go v0.35.4" in text
    assert "./staging" not in text
    assert "require k8s.io/kubernetes v1.35.4" in text


def test_a_missing_toolchain_is_named_with_how_to_install_it() -> None:
    with pytest.raises(LocalPartError, match=r"`no-such-go` is not on PATH; install it: apt-get"):
        require_tool("no-such-go", "apt-get install golang-go")


def test_a_failed_command_reports_the_command_and_its_output() -> None:
    with pytest.raises(LocalPartError) as raised:
        run(["sh", "-c", "echo resolving; echo 'Could not resolve artifact' >&2; exit 3"],
            what="resolving Apache Kafka from Maven Central")
    message = str(raised.value)
    assert "resolving Apache Kafka from Maven Central failed (exit 3)" in message
    assert "Could not resolve artifact" in message


def test_a_server_that_dies_while_starting_fails_with_its_log_tail(tmp_path: Path) -> None:
    server = spawn("broken", ["sh", "-c", "echo 'FATAL: port in use'; exit 1"], tmp_path / "log")
    with pytest.raises(LocalPartError) as raised:
        wait_until(server, lambda: False, 20, "starting the broken server")
    assert "broken exited while starting the broken server" in str(raised.value)
    assert "FATAL: port in use" in str(raised.value)


def test_the_demo_installs_only_the_kafka_jars_and_the_tests_everything(tmp_path: Path) -> None:
    def planned(target: str) -> list[str]:
        dry = subprocess.run(["make", "-n", f"VENV={tmp_path / 'venv'}", target], cwd=REPO,
                             capture_output=True, text=True, check=True)
        return [line for line in dry.stdout.splitlines() if "-m localparts install" in line]

    assert [line.split("-m localparts ")[1] for line in planned("demo")] == ["install kafka"]
    assert [line.split("-m localparts ")[1] for line in planned("test")] == ["install"]



def test_the_demo_asks_for_avro_and_so_a_registry_only_when_told(tmp_path: Path) -> None:
    def demo(*variables: str) -> str:
        dry = subprocess.run(["make", "-n", f"VENV={tmp_path / 'venv'}", *variables, "demo"],
                             cwd=REPO, capture_output=True, text=True, check=True)
        return dry.stdout

    assert "workload.cli demo --output demo-output --format csv" in demo()
    assert "workload.cli demo --output demo-output --format avro" in demo("FORMAT=avro")
    assert "install registry" not in demo() + demo("FORMAT=avro")  # started (fetched) on demand


def test_the_avro_demo_job_reads_avro_through_the_registry_it_is_given(tmp_path: Path) -> None:
    from workload.demo import demo_job_yaml
    from workload.spec import load_job_file

    _, csv = load_job_file(demo_job_yaml("k:9092", tmp_path))
    _, avro = load_job_file(demo_job_yaml("k:9092", tmp_path, "http://127.0.0.1:1/apis/ccompat/v7"))
    assert csv.data.format == "csv"
    assert avro.data.format == "avro" and avro.data.label == "key"
    assert avro.data.schema_registry is not None
    assert avro.data.schema_registry.url == "http://127.0.0.1:1/apis/ccompat/v7"
    assert len(avro.data.feature_names) == 18


def _fake_java(folder: Path, version_line: str) -> str:
    script = folder / "java"
    script.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(("line", "major"), [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "25.0.2" 2026-01-20', 25),
    ('java version "1.8.0_401"', 8),
    ("no version here", 0),
])
def test_the_java_version_is_read_from_java_dash_version(tmp_path: Path, line: str,
                                                         major: int) -> None:
    assert registry.java_major(_fake_java(tmp_path, line)) == major


def test_the_registry_binds_both_of_its_ports_to_loopback(tmp_path: Path) -> None:
    line = registry.command(tmp_path, 8181, 9191)
    assert "-Dquarkus.http.host=127.0.0.1" in line and "-Dquarkus.http.port=8181" in line
    assert "-Dquarkus.management.host=127.0.0.1" in line
    assert "-Dquarkus.management.port=9191" in line
    assert line[-2:] == ["-jar", str(tmp_path / "quarkus-run.jar")]
    assert registry.java_major(line[0]) >= registry.JAVA_MIN
