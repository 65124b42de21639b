"""The images `make image` wrote, loaded into podman, and a way to run commands in them.

Commands run as the kubelet would run a pod's container (`localparts.containers`):
host network, read-only root filesystem with only /tmp writable, the image's own
user unless a test names one.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localparts import containers, image
from localparts.errors import LocalPartError

RUN_TIMEOUT_S = 600
"""Seconds one command in an image may take (a small train + evaluate job takes about a minute)."""

PROBE = """
import importlib, importlib.metadata, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
left_out = set(sys.argv[2].split(",")) - {""}
modules = sorted(info.name for info in pkgutil.walk_packages(package.__path__, sys.argv[1] + ".")
                 if not info.name.endswith(".__main__"))
for module in modules:
    if module not in left_out:
        importlib.import_module(module)
print(json.dumps({"modules": modules,
                  "versions": {name: importlib.metadata.version(name) for name in sys.argv[3:]}}))
"""
"""Run in an image: imports every module of a package (but `__main__`, which would run it, and
those named to leave out); prints them and distributions' versions."""


@dataclass(frozen=True)
class Image:
    """A loaded image and the target it was built from."""

    name: str
    target: str

    def run(self, *command: str, env: Mapping[str, str] | None = None,
            mounts: Sequence[containers.Mount] = (), user: str | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run a command in the image to completion; output captured."""
        argv = containers.run_command(self.name, command, name=f"test-{uuid.uuid4().hex[:10]}",
                                      env=env, mounts=mounts, user=user)
        return subprocess.run(argv, env=containers.environment(), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT_S, check=False)

    def probe(self, package: str, distributions: Sequence[str],
              left_out: Sequence[str] = ()) -> dict[str, Any]:
        """Import every module of `package` in the image (but `left_out`); its modules and the
        installed version of each distribution."""
        completed = self.run("python3", "-c", PROBE, package, ",".join(left_out), *distributions)
        assert completed.returncode == 0, completed.stderr[-3000:]
        found: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
        return found


def source_modules(folder: Path, package: str) -> list[str]:
    """Every module and subpackage under a source folder, as dotted names below `package`
    (`__main__` aside, as the probe leaves it)."""
    names = set()
    for path in folder.rglob("*.py"):
        parts = path.relative_to(folder).with_suffix("").parts
        if "__pycache__" in parts or parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            names.add(".".join((package, *parts)))
    return sorted(names)


def _load(target: str) -> Image:
    try:
        name = containers.load(image.archive_path(target))
    except LocalPartError as error:
        pytest.fail(str(error))
    assert name == image.image_name(target), f"{target} archive holds {name}"
    return Image(name, target)


@pytest.fixture(scope="session")
def operator_image() -> Image:
    """The operator image from dist/streamtrain-operator.tar."""
    return _load("operator")


@pytest.fixture(scope="session")
def workload_image() -> Image:
    """The workload image from dist/streamtrain-workload.tar."""
    return _load("workload")


@pytest.fixture(scope="session")
def workload_tfio_image() -> Image:
    """The tensorflow-io client's workload image from dist/streamtrain-workload-tfio.tar."""
    return _load("workload-tfio")


@pytest.fixture(scope="session")
def serve_image() -> Image:
    """The serving image without TensorFlow from dist/streamtrain-serve.tar."""
    return _load("serve")
