"""The pods' registry client against the real registry with credentials from a mounted Secret:
HTTP basic auth (Apicurio with users of its own), and HTTPS with the registry's CA and a
KafkaUser's client certificate. A refused login says so without showing the password.

Apicurio Registry 3.3.3 fixes `quarkus.http.ssl.client-auth` at build time to `NONE`, so it
cannot be made to require the client certificate; what is proven here against it is the TLS
path the certificate travels (the CA verifying the registry, the key pair loaded and offered).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localparts import registry
from localparts.ports import free_port
from tests.security.tls_broker import _certificates
from workload.contract import REGISTRY_CA_ENV, REGISTRY_CREDENTIALS_ENV
from workload.data.schema_registry import RegistryUnavailable, SchemaRegistry, registry_access
from workload.spec import SchemaRegistrySpec

SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "x", "type": "double"}]})
PASSWORD = "s3cret-Passw0rd"


def _secret(folder: Path, **keys: str) -> Path:
    """A folder laid out as a mounted Secret: one file per key."""
    folder.mkdir(parents=True)
    for key, value in keys.items():
        (folder / key).write_text(value)
    return folder


def test_basic_auth_from_a_mounted_secret_and_a_refused_login(tmp_path: Path) -> None:
    started = registry.start(tmp_path / "registry", properties=registry.basic_auth({"trainer": PASSWORD}))
    try:
        spec = SchemaRegistrySpec.model_validate({
            "url": started.url, "authentication": {"type": "basic", "secretName": "registry-user"}})
        good = _secret(tmp_path / "good", username="trainer", password=PASSWORD + "\n")
        client = SchemaRegistry(registry_access(spec, {REGISTRY_CREDENTIALS_ENV: str(good)}))
        schema_id = client.register("auth-value", SCHEMA)
        found_id, version, text = client.version("auth-value")
        assert (found_id, version, json.loads(text)) == (schema_id, 1, json.loads(SCHEMA))

        bad = _secret(tmp_path / "bad", username="trainer", password="not-" + PASSWORD)
        refused = SchemaRegistry(registry_access(spec, {REGISTRY_CREDENTIALS_ENV: str(bad)}))
        with pytest.raises(RegistryUnavailable) as raised:
            refused.schema(schema_id)
        assert "HTTP 401" in str(raised.value)
        assert PASSWORD not in str(raised.value) and PASSWORD not in repr(refused.__dict__)
    finally:
        started.stop()


def test_https_with_the_registry_ca_and_a_kafka_users_certificate(tmp_path: Path) -> None:
    ca, user, _ = _certificates(tmp_path / "certificates", "trainer")
    certificates = tmp_path / "certificates"
    started = registry.start(tmp_path / "registry", properties={
        "quarkus.http.ssl-port": str(free_port()),
        "quarkus.http.insecure-requests": "disabled",
        "quarkus.http.ssl.certificate.files": str(certificates / "broker.crt"),
        "quarkus.http.ssl.certificate.key-files": str(certificates / "broker.key")})
    try:
        assert started.url.startswith("https://127.0.0.1:")
        spec = SchemaRegistrySpec.model_validate({
            "url": started.url, "caSecretName": "registry-ca",
            "authentication": {"type": "tls", "secretName": "trainer"}})
        mounted = {REGISTRY_CREDENTIALS_ENV: str(user), REGISTRY_CA_ENV: str(ca)}
        access = registry_access(spec, mounted)
        assert (access.cert_file, access.key_file) == (str(user / "user.crt"),
                                                       str(user / "user.key"))
        client = SchemaRegistry(access)
        schema_id = client.register("tls-value", SCHEMA)
        assert json.loads(client.schema(schema_id)) == json.loads(SCHEMA)

        untrusted = SchemaRegistry(registry_access(spec, {REGISTRY_CREDENTIALS_ENV: str(user)}),
                                   attempts=1)
        with pytest.raises(RegistryUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            untrusted.schema(schema_id)
    finally:
        started.stop()
