"""The local schema registry: Apicurio Registry from Maven Central, on 127.0.0.1 only."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

from localparts import registry
from localparts.ports import port_open


def _listening(port: int) -> list[str]:
    """The local addresses something listens on at `port` (from `ss`)."""
    shown = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                           check=True).stdout
    return [line.split()[3].rsplit(":", 1)[0].strip("[]") for line in shown.splitlines()]


def test_the_registry_serves_the_confluent_api_on_loopback_only(
        schema_registry: registry.Registry) -> None:
    for port in (schema_registry.port, schema_registry.management_port):
        addresses = _listening(port)
        assert addresses, f"nothing listens on {port}"
        assert set(addresses) <= {"127.0.0.1", "::ffff:127.0.0.1"}, addresses
    subject = "registry-smoke-value"
    schema = {"type": "record", "name": "Smoke", "fields": [{"name": "x", "type": "double"}]}
    request = urllib.request.Request(
        f"{schema_registry.url}/subjects/{subject}/versions", method="POST",
        data=json.dumps({"schema": json.dumps(schema)}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        schema_id = json.load(answer)["id"]
    with urllib.request.urlopen(f"{schema_registry.url}/schemas/ids/{schema_id}",
                                timeout=10) as answer:
        assert json.loads(json.load(answer)["schema"]) == schema


def test_a_registry_stops_on_sigterm_and_frees_its_ports(tmp_path: Path) -> None:
    started = registry.start(tmp_path)
    assert registry.ready(started.management_port)
    started.stop()
    assert not started.process.alive()
    assert not port_open(started.port) and not port_open(started.management_port)
    assert "stopped in" in Path(started.process.log_path).read_text()
