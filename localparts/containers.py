"""Run a command in a built image the way a kubelet runs a pod's container, with podman.

podman runs without a daemon, on the same vfs storage as `localparts.image`
(so images built with buildah there are already present): host network, a
read-only root filesystem with only a fresh /tmp writable, the given user,
environment and bind mounts. podman and runc are installed from Debian when
missing.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from localparts.errors import LocalPartError
from localparts.image import Engine, apt_install, daemonless

RUNTIME = "runc"
"""The OCI runtime: Debian's crun 1.8 refuses a hybrid cgroup hierarchy (as on this machine)."""

DEBIAN_PACKAGES = ("podman", RUNTIME)

MAX_PROCESSES = 32768
"""RLIMIT_NPROC in containers. podman's defaults (about a million files and processes) are
above what root without CAP_SYS_RESOURCE (a sandboxed machine) may set; the open-file limit
is the caller's own."""


@dataclass(frozen=True)
class Mount:
    """A host path bound into the container."""

    host: Path
    path: str
    read_only: bool = False


def podman() -> Engine:
    """podman on the images' storage, installed from Debian if needed."""
    if shutil.which("podman") is None or shutil.which(RUNTIME) is None:
        apt_install(DEBIAN_PACKAGES)
    engine = daemonless("podman")
    # No systemd or journald needed: cgroups written directly, events to a file.
    return replace(engine, options=(*engine.options, "--cgroup-manager", "cgroupfs",
                                    "--events-backend", "file"))


def load(archive: Path) -> str:
    """Load an archive written by `make image` (cheap when its layers are already stored);
    returns the image's name."""
    if not archive.exists():
        raise LocalPartError(f"{archive} is missing: run `make image` first")
    output = podman().call("load", "-i", str(archive), what=f"loading {archive.name}")
    names = re.findall(r"Loaded image(?:\(s\))?: (\S+)", output)
    if not names:
        raise LocalPartError(f"podman load named no image:\n{output}")
    return str(names[-1].split(",")[0])


def run_command(image: str, command: Sequence[str], *, name: str,
                env: Mapping[str, str] | None = None, mounts: Sequence[Mount] = (),
                user: str | None = None, read_only: bool = True,
                hosts: Mapping[str, str] | None = None) -> list[str]:
    """The `podman run` command line: host network, no capabilities, no privilege escalation,
    a read-only root with a fresh /tmp (unless `read_only` is false), the image's own user
    unless `user` (``uid[:gid]``) is given; `hosts` adds name -> address entries."""
    files, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    processes = min(resource.getrlimit(resource.RLIMIT_NPROC)[0], MAX_PROCESSES)
    argv = podman().command(
        "run", "--rm", "--name", name, "--runtime", RUNTIME, "--pull", "never",
        "--network", "host",
        "--ulimit", f"nofile={files}:{files}", "--ulimit", f"nproc={processes}:{processes}",
        "--security-opt", "no-new-privileges", "--cap-drop", "all")
    if all(mount.path != "/tmp" for mount in mounts):  # a pod may mount its own scratch there
        argv += ["--tmpfs", "/tmp"]
    if read_only:
        argv += ["--read-only", "--read-only-tmpfs=false"]  # /tmp only, not /run or /var/tmp
    if user is not None:
        argv += ["--user", user]
    for host, address in (hosts or {}).items():
        argv += ["--add-host", f"{host}:{address}"]
    for key, value in (env or {}).items():
        argv += ["--env", f"{key}={value}"]
    for mount in mounts:
        argv += ["--volume", f"{mount.host}:{mount.path}:{'ro' if mount.read_only else 'rw'}"]
    return [*argv, image, *command]


def environment() -> dict[str, str]:
    """The environment podman needs (storage driver, temporary folder), over this process's."""
    return {**os.environ, **podman().env}


def remove(name: str) -> None:
    """Remove a container that may still run (its `podman run` was killed)."""
    subprocess.run(podman().command("rm", "--force", "--ignore", name), env=environment(),
                   capture_output=True, check=False, timeout=60)
