"""The images `make image` wrote, loaded into podman, and a way to run commands in them.

Commands run as the kubelet would run a pod's container (`localparts.containers`):
host network, read-only root filesystem with only /tmp writable, the image's own
user unless a test names one.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pytest

from localparts import containers, image
from localparts.errors import LocalPartError

RUN_TIMEOUT_S = 600
"""Seconds one command in an image may take (a small train + evaluate job takes about a minute)."""


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
