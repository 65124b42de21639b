"""Build the Kubernetes control plane binaries from the Go module proxy, once.

Kubernetes publishes no binaries to a package registry, and its root module
cannot be `go install`-ed: its go.mod points every staging module
(`k8s.io/api`, `k8s.io/client-go`, ...) at `./staging/...`. A wrapper module
of ours copies that go.mod, points each staging module at its published
`v0.X.Y` release instead, and builds the commands from it. etcd comes from the
same dependency graph (`go.etcd.io/etcd/server/v3` at the version this
Kubernetes release pins), so the pair is the one upstream tests together.

The binaries are cached per version under ``<cache>/kubernetes/<version>/bin``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from localparts.cache import cache_root, require_tool, run

KUBERNETES_VERSION = "v1.35.4"
"""The Kubernetes release the project tests against (built with the machine's Go 1.26)."""

BINARIES = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    "etcd": "go.etcd.io/etcd/server/v3",
}
"""Each binary we build and the Go package whose ``main`` it is."""

GO_INSTALL_HINT = "apt-get install golang-go, or a Go >= 1.25 toolchain from go.dev"


def binary_dir(version: str = KUBERNETES_VERSION) -> Path:
    """Where the binaries of ``version`` are kept."""
    return cache_root() / "kubernetes" / version / "bin"


def binaries_present(version: str = KUBERNETES_VERSION) -> bool:
    """Whether every binary of ``version`` is already built."""
    directory = binary_dir(version)
    return all((directory / name).exists() for name in BINARIES)


def staging_version(version: str) -> str:
    """Staging modules are tagged ``v0.<minor>.<patch>`` for Kubernetes ``v1.<minor>.<patch>``."""
    return "v0." + version.removeprefix("v1.")


def wrapper_go_mod(upstream_go_mod: str, version: str) -> str:
    """Our go.mod: upstream's requirements, with staging replaces aimed at published tags."""
    published = staging_version(version)
    text = re.sub(r"^module .*$", "module streamtrain.dev/localparts/kubebuild", upstream_go_mod, count=1, flags=re.M)
    text = re.sub(
        r"^(\s*)(k8s\.io/[\w.-]+) => \./staging/src/k8s\.io/[\w.-]+\s*$",
        rf"\1\2 => \2 {published}",
        text,
        flags=re.M,
    )
    return text + f"\nrequire k8s.io/kubernetes {version}\n"


def build(version: str = KUBERNETES_VERSION) -> Path:
    """Build (or reuse) the control plane binaries of ``version``; return their directory."""
    directory = binary_dir(version)
    if binaries_present(version):
        return directory
    go = require_tool("go", GO_INSTALL_HINT)
    module_dir = directory.parent / "module"
    module_dir.mkdir(parents=True, exist_ok=True)
    env = {"GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
    info = json.loads(
        run([go, "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
            cwd=module_dir, env=env, what=f"downloading k8s.io/kubernetes@{version}")
    )
    upstream = Path(info["GoMod"]).read_text()
    (module_dir / "go.mod").write_text(wrapper_go_mod(upstream, version))
    (module_dir / "go.sum").touch()
    minor = version.split(".")[1]
    ldflags = (
        f"-s -w -X k8s.io/component-base/version.gitVersion={version}"
        f" -X k8s.io/component-base/version.gitMajor=1"
        f" -X k8s.io/component-base/version.gitMinor={minor}"
        f" -X k8s.io/client-go/pkg/version.gitVersion={version}"
    )
    staging = directory.with_name("bin.partial")
    staging.mkdir(parents=True, exist_ok=True)
    for name, package in BINARIES.items():
        if (staging / name).exists():
            continue
        run([go, "build", "-trimpath", "-ldflags", ldflags, "-o", staging / f"{name}.tmp", package],
            cwd=module_dir, env={**env, "GOMAXPROCS": str(os.cpu_count() or 2)},
            what=f"building {name} {version} from the Go module proxy")
        (staging / f"{name}.tmp").rename(staging / name)
    staging.rename(directory)
    return directory


if __name__ == "__main__":
    print(build())
