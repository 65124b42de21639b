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


def test_records_of_a_schema_the_registry_cannot_be_asked_for_are_set_aside_as_unreachable(
        tmp_path: Path) -> None:
    from tests.avro_support import wire
    from workload.data.avro_decode import AvroDecoder
    from workload.data.schema_registry import RegistryAccess, SchemaRegistry
    from workload.spec import DataSpec

    started = registry.start(tmp_path)
    v1 = {"type": "record", "name": "R", "fields": [{"name": "x", "type": "double"}]}
    v2 = {**v1, "fields": [*v1["fields"], {"name": "y", "type": "double", "default": 0.0}]}
    client = SchemaRegistry(RegistryAccess(started.url))
    first = client.register("gone-value", json.dumps(v1))
    data = DataSpec.model_validate({"format": "avro", "columns": ["x"], "label": "key",
                                    "schemaRegistry": {"url": started.url,
                                                       "subject": "gone-value"}})
    decode = AvroDecoder(data, registry=SchemaRegistry(RegistryAccess(started.url), attempts=2))
    assert decode([b"1"], [wire(first, v1, {"x": 1.0})]).counts() == {}
    second = client.register("gone-value", json.dumps(v2))
    started.stop()

    decoded = decode([b"1", b"0"], [wire(first, v1, {"x": 2.0}),
                                    wire(second, v2, {"x": 3.0, "y": 4.0})])

    assert decoded.counts() == {"registry_unreachable": 1}  # the id seen before is kept
    assert decoded.features.tolist() == [[2.0]]
