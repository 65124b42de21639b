"""Build the operator and workload images from the Dockerfile with whatever engine works here.

    python -m localparts.image [--base IMAGE] [--target operator|workload|workload-tfio|serve] [--engine NAME]

The engine is, in order: docker when its daemon answers, podman, buildah; with
none of them, buildah and mmdebstrap are installed from Debian with apt-get.
podman and buildah run without a daemon or a registry: `vfs` storage and
`chroot` isolation, their storage kept under ``<cache>/image``.

The base: the Dockerfile's default (``python:3.11-slim-bookworm``) comes from
a registry of images. Without ``--base``, a Debian bookworm root filesystem
with its python3 (3.11, the same Debian release and Python) is bootstrapped
with mmdebstrap instead, once, and imported into the engine, so no registry
is needed. Downloaded wheels are kept by the Dockerfile's cache mount, which
podman and buildah put under ``$TMPDIR``: pointed into the cache directory,
so a rebuild downloads nothing. podman and buildah keep no layers between
builds (with `vfs` each layer, and each step's container, is a full copy of
the tree: the workload's 2.6 GB environment would fill the disk), and the
image a build replaces is removed; docker caches its layers as usual. Each
image is labelled with a digest of what its build reads (`context_digest`):
a target whose image in the engine carries the current digest is not built
again.

Each image is written to ``dist/streamtrain-<target>.tar``: an OCI archive
with a Docker ``manifest.json`` too, so both `podman load` and `docker load`
(old and new) accept it. An archive that already holds the built image is
kept as it is (writing one recompresses every layer).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localparts.cache import cache_root, run
from localparts.errors import LocalPartError

REPO = Path(__file__).resolve().parent.parent
DIST = REPO / "dist"
TARGETS = ("operator", "workload", "workload-tfio", "serve")
"""The Dockerfile's final stages; each installs the pyproject extra of the same name."""

DEFAULT_TARGETS = ("operator", "workload")
"""What `make image` builds: the operator and the default workload. `workload-tfio` (the
tensorflow-io client, TensorFlow 2.16) is built on request (`make image-tfio`)."""

REGISTRY = "ghcr.io/streamtrain"
"""Where released images live; local builds carry the same names, so defaults match."""

SIZE_GOALS_MB = {"operator": 250}
"""Uncompressed image size each target should stay under (MB = 10**6 bytes)."""

DEBIAN_RELEASE = "bookworm"
"""The Debian release of the default base (python:3.11-slim-bookworm) and of the local one."""

BASE_VARIANT = "minbase"
"""Debian's required packages and apt, as in the debian:bookworm-slim that the default base is
built on; among them libstdc++6, which TensorFlow needs."""

BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
"""bookworm's python3 is 3.11; python3-venv brings `venv` with pip; CA certificates for TLS."""

BASE_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
"""Paths dpkg leaves out of the local base, as the slim images do (about 40 MB)."""

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
"""Bound over the base's own bundle during RUN steps (never committed), so pip trusts what
this machine trusts, a TLS-inspecting proxy's certificate included."""

DEBIAN_PACKAGES = ("buildah", "mmdebstrap")
"""What apt-get installs when no engine is present."""

CONTEXT = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "workload", "operator",
           "localparts")
"""What a build reads from the repository: the Dockerfile and what `.dockerignore` lets in."""

CONTEXT_LEFT_OUT = ("__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache")
"""Folders `.dockerignore` keeps out of the context (and `*.pyc`)."""

CONTEXT_LABEL = "dev.streamtrain.build-context"
"""The image label holding `context_digest`: an image whose label matches is not rebuilt."""


def image_cache() -> Path:
    """Engine storage, the bootstrapped base and the pip cache: ``<cache>/image``."""
    folder = cache_root() / "image"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def version() -> str:
    """The project's version, from pyproject.toml: the tag of the images."""
    with (REPO / "pyproject.toml").open("rb") as source:
        return str(tomllib.load(source)["project"]["version"])


def pins(target: str) -> dict[str, str]:
    """What a target installs: the project's dependencies and the extra of the target's name,
    as distribution name -> pinned version (every requirement there is pinned with ``==``)."""
    with (REPO / "pyproject.toml").open("rb") as source:
        project = tomllib.load(source)["project"]
    found = {}
    for requirement in [*project["dependencies"], *project["optional-dependencies"][target]]:
        name, separator, pinned = requirement.partition("==")
        if not separator:
            raise LocalPartError(f"pyproject.toml: {requirement!r} of the {target} extra is not pinned")
        found[name.strip().lower()] = pinned.strip()
    return found


def image_name(target: str) -> str:
    """The full name of a target's image, e.g. ``ghcr.io/streamtrain/streamtrain-operator:0.1.0``."""
    return f"{REGISTRY}/streamtrain-{target}:{version()}"


def archive_path(target: str) -> Path:
    """Where `make image` writes a target's OCI archive."""
    return DIST / f"streamtrain-{target}.tar"


def apt_install(packages: Sequence[str]) -> None:
    """Install Debian packages (as root, non-interactively); a clear error where apt is absent."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise LocalPartError(f"install {', '.join(packages)} (no container engine found, and "
                             "apt-get as root is not available to install them)")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env, what="apt-get update")
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env,
        what=f"apt-get install {' '.join(packages)}")


@dataclass(frozen=True)
class Engine:
    """A container engine: its program, the options every call needs, and its environment."""

    name: str
    options: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    def command(self, *arguments: str) -> list[str]:
        """A full command line of this engine."""
        return [self.name, *self.options, *arguments]

    def call(self, *arguments: str, what: str) -> str:
        """Run an engine command; raise with its output tail when it fails."""
        return run(self.command(*arguments), env=self.env, what=what)

    def has_image(self, name: str) -> bool:
        """Whether the engine's storage holds an image of this name."""
        inspect = ("inspect", "--type", "image") if self.name == "buildah" else ("image", "inspect")
        completed = subprocess.run(self.command(*inspect, name), env={**os.environ, **self.env},
                                   capture_output=True, check=False)
        return completed.returncode == 0

    def label(self, name: str, key: str) -> str | None:
        """A label of an image in the engine's storage; None without the image or the label."""
        inspect = ("inspect", "--type", "image") if self.name == "buildah" else ("image", "inspect")
        config = ".OCIv1.Config" if self.name == "buildah" else ".Config"
        completed = subprocess.run(
            self.command(*inspect, "--format", f'{{{{index {config}.Labels "{key}"}}}}', name),
            env={**os.environ, **self.env}, capture_output=True, text=True, check=False)
        found = completed.stdout.strip()
        return found if completed.returncode == 0 and found and found != "<no value>" else None

    def build(self, target: str, name: str, base: str | None, context: str = "") -> None:
        """Build one target of the Dockerfile, labelled with its `context` digest; the
        engine's output goes to this process's output."""
        command = self.command("bud" if self.name == "buildah" else "build", "--target", target,
                               "-t", name, "-f", str(REPO / "Dockerfile"),
                               "--label", f"{CONTEXT_LABEL}={context}")
        if base:
            command += ["--build-arg", f"BASE_IMAGE={base}"]
        if self.name != "docker":
            # No cached layers: with vfs each is a full copy (so is each step's container);
            # the wheels are what a rebuild reuses.
            command += ["--isolation", "chroot", "--layers=false", "--force-rm"]
            if HOST_CA_BUNDLE.exists():
                command += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        completed = subprocess.run([*command, str(REPO)], env={**os.environ, **self.env},
                                   check=False)
        if completed.returncode != 0:
            raise LocalPartError(f"building the {target} image failed (exit "
                                 f"{completed.returncode}): {' '.join(command)}")
        if self.name != "docker":  # the image this build replaced, now untagged (GBs on vfs)
            self.call(*(("rmi", "--prune") if self.name == "buildah" else ("image", "prune", "--force")),
                      what="removing untagged images")

    def image_id(self, name: str) -> str:
        """An image's ID: the digest of its config, without ``sha256:``."""
        template = "{{.FromImageID}}" if self.name == "buildah" else "{{.Id}}"
        inspect = ("inspect", "--type", "image") if self.name == "buildah" else ("image", "inspect")
        found = self.call(*inspect, "--format", template, name, what=f"inspecting {name}")
        return found.strip().removeprefix("sha256:")

    def save(self, name: str, archive: Path) -> bool:
        """Write the image as an OCI archive (docker: its own save format, OCI since 25), unless
        the archive already holds this very image (writing one recompresses every layer: minutes
        for the workload image). Returns whether it wrote the archive."""
        if archived_id(archive) == self.image_id(name):
            return False
        archive.unlink(missing_ok=True)
        if self.name == "docker":
            self.call("save", "-o", str(archive), name, what=f"saving {name}")
            return True
        self.call("push", name, f"oci-archive:{archive}:{name}", what=f"saving {name}")
        add_docker_manifest(archive, name)
        return True


def daemonless(name: str) -> Engine:
    """podman or buildah with vfs storage under the cache, needing no daemon and no privileges
    beyond root's (vfs copies layers instead of mounting an overlay)."""
    folder = image_cache()
    tmp = folder / "tmp"  # cache mounts (the wheelhouse) live under $TMPDIR
    tmp.mkdir(exist_ok=True)
    options = ("--root", str(folder / "storage"), "--runroot", str(folder / "run"),
               "--storage-driver", "vfs")
    return Engine(name, options, {"STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot",
                                  "TMPDIR": str(tmp)})


def find_engine(prefer: str | None = None) -> Engine:
    """The first engine that works here; installs buildah from Debian when there is none."""
    for name in [prefer] if prefer else ["docker", "podman", "buildah"]:
        if shutil.which(name) is None:
            continue
        if name != "docker":
            return daemonless(name)
        answered = subprocess.run(["docker", "info"], capture_output=True, check=False)
        if answered.returncode == 0:
            return Engine("docker")
    if prefer not in (None, "buildah"):
        raise LocalPartError(f"{prefer} is not installed here, or its daemon does not answer")
    apt_install(DEBIAN_PACKAGES)
    return daemonless("buildah")


def base_rootfs() -> Path:
    """A Debian root filesystem with python3 as a tarball, bootstrapped once by mmdebstrap."""
    recipe = " ".join((DEBIAN_RELEASE, BASE_VARIANT, *BASE_PACKAGES, *BASE_EXCLUDES))
    tarball = image_cache() / f"base-{DEBIAN_RELEASE}-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("mmdebstrap") is None:
        apt_install(["mmdebstrap"])
    command = ["mmdebstrap", "--quiet", f"--variant={BASE_VARIANT}", f"--include={','.join(BASE_PACKAGES)}"]
    merged_usr_hook = Path("/usr/share/mmdebstrap/hooks/merged-usr")
    if merged_usr_hook.is_dir():  # without it bookworm pulls in usrmerge and perl (~50 MB)
        command.append(f"--hook-dir={merged_usr_hook}")
    command += [f"--dpkgopt=path-exclude={path}" for path in BASE_EXCLUDES]
    command += ["--dpkgopt=path-include=/usr/share/doc/*/copyright", DEBIAN_RELEASE]
    partial = tarball.with_suffix(".partial.tar")  # mmdebstrap picks the format by extension
    run([*command, str(partial)], what=f"bootstrapping Debian {DEBIAN_RELEASE}")
    partial.rename(tarball)
    return tarball


def local_base(engine: Engine) -> str:
    """The locally bootstrapped base, imported into the engine once (a new import would
    change its ID and so invalidate every cached layer built on it)."""
    rootfs = base_rootfs()
    name = f"localhost/streamtrain-base:{DEBIAN_RELEASE}-{rootfs.stem.rsplit('-', 1)[-1]}"
    if engine.has_image(name):
        return name
    if engine.name == "buildah":
        container = engine.call("from", "scratch", what="a scratch container").strip()
        engine.call("add", container, str(rootfs), "/", what="adding the base root filesystem")
        engine.call("config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--cmd", "python3", container, what="configuring the base")
        engine.call("commit", "--rm", container, name, what="committing the base")
    else:
        engine.call("import", "--change", "CMD python3", str(rootfs), name,
                    what="importing the base root filesystem")
    return name


def context_digest(target: str, base: str, root: Path = REPO) -> str:
    """A digest of all a target's build depends on: the target, the base (its ID where the
    engine has it) and the files of the build context, by path, mode and content. Pins are in
    `pyproject.toml`, so equal digests mean an equal image."""
    digest = hashlib.sha256(f"{target}\0{base}\0".encode())
    for entry in CONTEXT:
        path = root / entry
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            relative = file.relative_to(root)
            if (not file.is_file() or file.suffix == ".pyc"
                    or any(part in CONTEXT_LEFT_OUT for part in relative.parts)):
                continue
            digest.update(f"{relative.as_posix()}\0{file.stat().st_mode & 0o777:o}\0".encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _json_member(archive: tarfile.TarFile, path: str) -> Any:
    """A JSON document inside a tar archive."""
    member = archive.extractfile(path)
    if member is None:
        raise LocalPartError(f"{path} is missing from {archive.name!s}")
    return json.load(member)


def _blob_path(digest: str) -> str:
    """Where an OCI archive keeps a blob: ``sha256:abc`` -> ``blobs/sha256/abc``."""
    return "blobs/" + digest.replace(":", "/")


def add_docker_manifest(archive: Path, name: str) -> None:
    """Append Docker's `manifest.json` to an OCI archive, pointing at the same blobs, so that
    `docker load` before Docker 25 (which reads only that file) loads it too, as `name`."""
    with tarfile.open(archive) as source:
        index = _json_member(source, "index.json")
        manifest = _json_member(source, _blob_path(index["manifests"][0]["digest"]))
    entry = [{"Config": _blob_path(manifest["config"]["digest"]), "RepoTags": [name],
              "Layers": [_blob_path(layer["digest"]) for layer in manifest["layers"]]}]
    data = json.dumps(entry).encode()
    info = tarfile.TarInfo("manifest.json")
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    with tarfile.open(archive, "a") as target:
        target.addfile(info, io.BytesIO(data))


def archived_id(archive: Path) -> str | None:
    """The ID of the image an archive holds (its config blob's name), or None when there is no
    complete archive (`manifest.json` is written last)."""
    try:
        with tarfile.open(archive) as source:
            config = _json_member(source, "manifest.json")[0]["Config"]
    except (OSError, tarfile.TarError, KeyError, LocalPartError, ValueError):
        return None
    return str(config).rsplit("/", 1)[-1].removesuffix(".json")


def layer_sizes(archive: Path) -> tuple[int, int]:
    """(compressed, uncompressed) bytes of an archive's layers: what a registry stores and
    what `docker images` shows."""
    compressed = uncompressed = 0
    with tarfile.open(archive) as source:
        manifest = _json_member(source, "manifest.json")[0]
        for path in manifest["Layers"]:
            member = source.getmember(path)
            compressed += member.size
            stream = source.extractfile(member)
            assert stream is not None
            head = stream.read(2)
            stream.seek(0)
            reader = gzip.GzipFile(fileobj=stream) if head == b"\x1f\x8b" else stream
            while chunk := reader.read(1 << 20):
                uncompressed += len(chunk)
    return compressed, uncompressed


def describe(target: str, archive: Path) -> str:
    """One line: the archive, its sizes and the target's goal."""
    compressed, uncompressed = layer_sizes(archive)
    line = (f"{target:13} {archive.relative_to(REPO)}: image {uncompressed / 1e6:.0f} MB,"
            f" compressed layers {compressed / 1e6:.0f} MB")
    goal = SIZE_GOALS_MB.get(target)
    if goal is not None:
        verdict = "met" if uncompressed / 1e6 <= goal else "MISSED"
        line += f" (goal <= {goal} MB: {verdict})"
    return line


def build(targets: Sequence[str] = DEFAULT_TARGETS, base: str | None = None,
          engine: Engine | None = None) -> dict[str, Path]:
    """Build the targets and write their archives; returns each target's archive."""
    engine = engine or find_engine()
    base = base or local_base(engine)
    DIST.mkdir(exist_ok=True)
    archives = {}
    base_id = engine.image_id(base) if engine.has_image(base) else base
    for target in targets:
        started = time.monotonic()
        context = context_digest(target, base_id)
        unchanged = engine.label(image_name(target), CONTEXT_LABEL) == context
        if not unchanged:
            engine.build(target, image_name(target), base, context)
        saved = engine.save(image_name(target), archive_path(target))
        archives[target] = archive_path(target)
        outcome = ("unchanged: not rebuilt" if unchanged else "built") + (
            ", saved" if saved else ", the archive already held it")
        print(f"{target}: {outcome} in {time.monotonic() - started:.0f} s", flush=True)
    return archives


def main(argv: list[str] | None = None) -> int:
    """Build, then print each archive's sizes; a failure prints its cause and exits 1."""
    parser = argparse.ArgumentParser(prog="python -m localparts.image", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="base image (default: Debian bookworm bootstrapped here)")
    parser.add_argument("--target", choices=TARGETS, action="append",
                        help=f"default: {' and '.join(DEFAULT_TARGETS)}")
    parser.add_argument("--engine", choices=("docker", "podman", "buildah"))
    arguments = parser.parse_args(argv)
    started = time.monotonic()
    try:
        engine = find_engine(arguments.engine)
        print(f"engine: {engine.name}; base: {arguments.base or 'Debian ' + DEBIAN_RELEASE + ' (mmdebstrap)'}",
              flush=True)
        archives = build(arguments.target or DEFAULT_TARGETS, arguments.base, engine)
    except LocalPartError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for target, archive in archives.items():
        print(describe(target, archive))
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
