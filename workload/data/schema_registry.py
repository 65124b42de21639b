"""A client of a Confluent-compatible schema registry: schemas by id and by subject version.

Apicurio Registry (`/apis/ccompat/v7`) and Confluent Schema Registry serve the
same API; this client uses four of its calls over the standard library's HTTP:
`GET /schemas/ids/{id}`, `GET /subjects/{subject}/versions/{version}`,
`POST /subjects/{subject}/versions` and `PUT /config/{subject}`.

Credentials come from a mounted Secret (`REGISTRY_CREDENTIALS_ENV`), never
from the spec: `username` and `password` files for basic auth, `user.crt` and
`user.key` for mutual TLS (a Strimzi KafkaUser's Secret). A registry CA comes
from `REGISTRY_CA_ENV`'s `ca.crt`. No message of this module carries them.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workload.contract import REGISTRY_CA_ENV, REGISTRY_CREDENTIALS_ENV
from workload.spec import SchemaRegistrySpec

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

TIMEOUT_S = 10.0
"""Seconds one request may take."""

ATTEMPTS = 3
"""Tries of a request the registry did not answer (connection refused, timeout, 5xx)."""

RETRY_DELAY_S = 0.5
"""Seconds before the second try, doubled for each next one."""


class RegistryError(RuntimeError):
    """The registry could not give what was asked."""


class SchemaNotFound(RegistryError):
    """The registry answered: no such schema id, subject or version (HTTP 404)."""


class RegistryUnavailable(RegistryError):
    """No answer after `ATTEMPTS` tries, or one that was not 2xx or 404 (login refused too)."""


@dataclass(frozen=True)
class RegistryAccess:
    """Where the registry is and how to log in; secrets are not shown in `repr`."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None


def registry_access(spec: SchemaRegistrySpec,
                    environ: Mapping[str, str] | None = None) -> RegistryAccess:
    """The registry of `spec`, with the credentials and CA mounted where the environment says."""
    env = os.environ if environ is None else environ
    auth = spec.authentication
    folder = env.get(REGISTRY_CREDENTIALS_ENV)
    ca_folder = env.get(REGISTRY_CA_ENV)
    ca_file = str(Path(ca_folder) / "ca.crt") if ca_folder else None
    if auth is None:
        return RegistryAccess(spec.url, ca_file=ca_file)
    if not folder:
        raise RegistryError(f"data.schemaRegistry.authentication names Secret "
                            f"{auth.secret_name!r}, but it is not mounted "
                            f"({REGISTRY_CREDENTIALS_ENV} is not set)")
    home = Path(folder)
    if auth.type == "basic":
        return RegistryAccess(spec.url, _read(home, "username"), _read(home, "password"),
                              ca_file=ca_file)
    for name in ("user.crt", "user.key"):
        _read(home, name)
    return RegistryAccess(spec.url, cert_file=str(home / "user.crt"),
                          key_file=str(home / "user.key"), ca_file=ca_file)


def _read(folder: Path, key: str) -> str:
    try:
        return (folder / key).read_text().strip()
    except OSError as error:
        raise RegistryError(f"the registry credentials have no {key!r} "
                            f"({error.strerror})") from None


class SchemaRegistry:
    """The calls the workload makes; one per process and registry is enough."""

    def __init__(self, access: RegistryAccess, timeout_s: float = TIMEOUT_S,
                 attempts: int = ATTEMPTS) -> None:
        self._base = access.url.rstrip("/")
        self._timeout = timeout_s
        self._attempts = attempts
        self._headers = {"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE}
        if access.username is not None:
            token = base64.b64encode(f"{access.username}:{access.password or ''}".encode())
            self._headers["Authorization"] = "Basic " + token.decode()
        self._context: ssl.SSLContext | None = None
        if access.url.startswith("https://"):
            self._context = ssl.create_default_context(cafile=access.ca_file)
            if access.cert_file and access.key_file:
                self._context.load_cert_chain(access.cert_file, access.key_file)

    @property
    def url(self) -> str:
        """The registry's base URL (no credentials in it)."""
        return self._base

    def schema(self, schema_id: int) -> str:
        """The schema (JSON text) registered under `schema_id`."""
        answer = self._call("GET", f"/schemas/ids/{int(schema_id)}")
        return _schema_text(answer, f"schema id {schema_id}")

    def version(self, subject: str, version: int | None = None) -> tuple[int, int, str]:
        """`(id, version, schema)` of `subject` at `version` (`None`: the latest)."""
        which = "latest" if version is None else str(int(version))
        answer = self._call("GET", f"/subjects/{_quote(subject)}/versions/{which}")
        text = _schema_text(answer, f"subject {subject!r} version {which}")
        return int(answer["id"]), int(answer["version"]), text

    def register(self, subject: str, schema: str) -> int:
        """Register `schema` (Avro, JSON text) under `subject`; its id (the same id when it is
        already there). A schema the subject's compatibility rule refuses is a `RegistryError`."""
        answer = self._call("POST", f"/subjects/{_quote(subject)}/versions", {"schema": schema})
        return int(answer["id"])

    def set_compatibility(self, subject: str, level: str) -> None:
        """Set `subject`'s compatibility rule (e.g. `BACKWARD`)."""
        self._call("PUT", f"/config/{_quote(subject)}", {"compatibility": level})

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        delay, last = RETRY_DELAY_S, ""
        for attempt in range(self._attempts):
            if attempt:
                time.sleep(delay)
                delay *= 2
            request = urllib.request.Request(self._base + path, data=data, method=method,
                                             headers=self._headers)
            try:
                with urllib.request.urlopen(request, timeout=self._timeout,
                                            context=self._context) as answer:
                    return json.load(answer)
            except urllib.error.HTTPError as error:
                detail = _detail(error)
                if error.code == 404:
                    raise SchemaNotFound(f"{method} {path}: {detail}") from None
                if error.code < 500:
                    raise RegistryUnavailable(f"the registry at {self._base} refused {method} "
                                              f"{path}: HTTP {error.code} {detail}") from None
                last = f"HTTP {error.code} {detail}"
            except (urllib.error.URLError, OSError, ValueError) as error:
                last = str(getattr(error, "reason", error))
        raise RegistryUnavailable(f"no answer from the registry at {self._base} to {method} "
                                  f"{path} after {self._attempts} tries (last: {last})")


def _quote(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def _schema_text(answer: Any, what: str) -> str:
    if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
        raise RegistryUnavailable(f"the registry's answer for {what} holds no schema")
    kind = answer.get("schemaType", "AVRO")
    if kind != "AVRO":
        raise SchemaNotFound(f"{what} is a {kind} schema, not Avro")
    return str(answer["schema"])


def _detail(error: urllib.error.HTTPError) -> str:
    """The registry's own message (`{"error_code": ..., "message": ...}`), if any."""
    try:
        body = json.loads(error.read() or b"{}")
    except ValueError:
        return str(error.reason)
    return str(body.get("message", error.reason)) if isinstance(body, dict) else str(error.reason)
