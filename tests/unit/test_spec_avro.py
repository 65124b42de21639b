"""The spec of an Avro job: a registry is required, and credentials never go in it."""

from __future__ import annotations

from typing import Any

import pytest

from workload.spec import DataSpec, SpecError, parse_spec

REGISTRY = {"url": "http://registry:8080/apis/ccompat/v7"}


def data(**fields: Any) -> dict[str, Any]:
    return {"format": "avro", "columns": ["event.pt", "label"], "label": "label",
            "schemaRegistry": REGISTRY, **fields}


def job(data_section: dict[str, Any]) -> dict[str, Any]:
    return {"kafka": {"bootstrapServers": "kafka:9092"}, "train": {"topic": "t"},
            "data": data_section}


def test_an_avro_job_names_its_registry_and_optionally_a_version() -> None:
    spec = parse_spec(job(data(schemaVersion=3)))
    assert spec.data.schema_registry is not None
    assert spec.data.schema_registry.url == REGISTRY["url"]
    assert spec.data.schema_version == 3


@pytest.mark.parametrize(("section", "words"), [
    ({"format": "avro", "columns": ["x"], "label": "key"}, "schemaRegistry is set exactly when"),
    (data(columns=None, label="key"), "format avro needs columns"),
    ({"format": "json", "columns": ["x"], "label": "key", "schemaRegistry": REGISTRY},
     "schemaRegistry is set exactly when"),
    ({"format": "csv", "schemaVersion": 2}, "schemaVersion applies to format avro only"),
    (data(schemaRegistry={"url": "http://user:secret@registry:8080"}),
     "without user name or password"),
    (data(schemaRegistry={"url": "ftp://registry"}), "must be an http or https URL"),
    (data(schemaRegistry={**REGISTRY, "authentication": {"type": "tls", "secretName": "u"}}),
     "authentication type tls needs an https url"),
    (data(schemaRegistry={**REGISTRY, "authentication": {"type": "basic",
                                                          "secretName": "Not_A_Name"}}),
     "secretName"),
])
def test_an_avro_spec_that_cannot_work_is_refused_naming_why(section: dict[str, Any],
                                                            words: str) -> None:
    with pytest.raises(SpecError, match=words):
        parse_spec(job(section))


def test_basic_auth_over_https_with_a_ca_parses() -> None:
    parsed = DataSpec.model_validate(data(schemaRegistry={
        "url": "https://registry:8443/apis/ccompat/v7", "caSecretName": "registry-ca",
        "authentication": {"type": "basic", "secretName": "registry-user"}}))
    assert parsed.schema_registry is not None and parsed.schema_registry.authentication is not None
    assert parsed.schema_registry.authentication.secret_name == "registry-user"
