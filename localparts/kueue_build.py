"""Build Kueue's manager from the Go module proxy, once, and find its manifests.

Kueue publishes its manager as a Go module (`sigs.k8s.io/kueue`) whose
go.mod has no local replaces, so `go install sigs.k8s.io/kueue/cmd/kueue@<version>`
builds it as released, with the version stamps of Kueue's own Makefile. The
same module holds what a cluster needs beside the binary: the CRDs
(`config/components/crd/bases/`) and the webhook configurations
(`config/components/webhook/manifests.yaml`), read from the Go module cache.

The binary is cached per version under ``<cache>/kueue/<version>/bin/kueue``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from localparts.cache import cache_root, require_tool, run

KUEUE_VERSION = "v0.17.0"
"""The Kueue release the project tests against (its go.mod asks for Go >= 1.25)."""

KUEUE_MODULE = "sigs.k8s.io/kueue"
KUEUE_PACKAGE = f"{KUEUE_MODULE}/cmd/kueue"
"""The Go package whose ``main`` is Kueue's manager."""

GO_INSTALL_HINT = "apt-get install golang-go, or a Go >= 1.25 toolchain from go.dev"

GO_ENV = {"GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
"""A static binary, built with the machine's Go (no toolchain download)."""


def binary_path(version: str = KUEUE_VERSION) -> Path:
    """Where the manager of ``version`` is kept."""
    return cache_root() / "kueue" / version / "bin" / "kueue"


def version_ldflags(version: str) -> str:
    """The ``-X`` stamps Kueue's Makefile sets, so the manager logs what it is."""
    return f"-s -w -X {KUEUE_MODULE}/pkg/version.GitVersion={version}"


def module_dir(version: str = KUEUE_VERSION) -> Path:
    """The module's source in the Go module cache (downloaded when missing): its manifests."""
    go = require_tool("go", GO_INSTALL_HINT)
    scratch = cache_root() / "kueue" / version
    scratch.mkdir(parents=True, exist_ok=True)
    info = json.loads(run([go, "mod", "download", "-json", f"{KUEUE_MODULE}@{version}"],
                          cwd=scratch, env=GO_ENV,
                          what=f"downloading {KUEUE_MODULE}@{version}"))
    return Path(info["Dir"])


def crd_dir(version: str = KUEUE_VERSION) -> Path:
    """Kueue's CustomResourceDefinitions, one file each."""
    return module_dir(version) / "config" / "components" / "crd" / "bases"


def webhook_manifests(version: str = KUEUE_VERSION) -> Path:
    """Kueue's webhook configurations, as its kustomize base has them (clientConfig by Service)."""
    return module_dir(version) / "config" / "components" / "webhook" / "manifests.yaml"


def build(version: str = KUEUE_VERSION) -> Path:
    """Build (or reuse) the manager of ``version``; return its path."""
    binary = binary_path(version)
    if binary.exists():
        return binary
    go = require_tool("go", GO_INSTALL_HINT)
    staging = binary.parent.with_name("bin.partial")
    staging.mkdir(parents=True, exist_ok=True)
    run([go, "install", "-trimpath", "-ldflags", version_ldflags(version),
         f"{KUEUE_PACKAGE}@{version}"],
        cwd=staging, env={**GO_ENV, "GOBIN": str(staging),
                          "GOMAXPROCS": str(os.cpu_count() or 2)},
        what=f"building Kueue {version} from the Go module proxy")
    binary.parent.mkdir(parents=True, exist_ok=True)
    (staging / "kueue").rename(binary)
    staging.rmdir()
    return binary


if __name__ == "__main__":
    print(build())
