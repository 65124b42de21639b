"""Build the `helm` binary from the Go module proxy, once.

Helm publishes its releases as a Go module (`helm.sh/helm/v3`), whose go.mod
has no local replaces: a wrapper module of ours requires the pinned release
and builds `helm.sh/helm/v3/cmd/helm` with the same version stamps as Helm's
own Makefile (the version `helm version` prints, and the Kubernetes version
that `helm lint` and `helm template` assume, taken from the client-go the
release pins).

The binary is cached per version under ``<cache>/helm/<version>/bin/helm``.

The module also keeps the chart's derived files in step with their sources
(``python -m localparts.helm sync``, or ``--check`` to fail when stale): the
chart's copy of the generated CRDs, and the plain install manifest rendered
from the chart for ``kubectl apply`` and kustomize users.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from localparts.cache import cache_root, require_tool, run
from localparts.errors import LocalPartError

HELM_VERSION = "v3.19.5"
"""The Helm release the chart is tested with (Go 1.24+, client-go v0.34)."""

HELM_PACKAGE = "helm.sh/helm/v3/cmd/helm"
"""The Go package whose ``main`` is the helm command."""

GO_INSTALL_HINT = "apt-get install golang-go, or a Go >= 1.24 toolchain from go.dev"


def binary_path(version: str = HELM_VERSION) -> Path:
    """Where the helm binary of ``version`` is kept."""
    return cache_root() / "helm" / version / "bin" / "helm"


def wrapper_go_mod(version: str) -> str:
    """Our go.mod: only the pinned Helm release; its own go.mod pins the rest."""
    return (
        "module streamtrain.dev/localparts/helmbuild\n\n"
        "go 1.24.0\n\n"
        f"require helm.sh/helm/v3 {version}\n"
    )


def kubernetes_version_of(upstream_go_mod: str) -> tuple[int, int]:
    """The Kubernetes (major, minor) that a Helm release's client-go ``v0.X.Y`` stands for."""
    found = re.search(r"^\s*k8s\.io/client-go v0\.(\d+)\.\d+", upstream_go_mod, flags=re.M)
    if found is None:
        raise ValueError("the Helm go.mod requires no k8s.io/client-go v0.X.Y")
    return 1, int(found.group(1))


def version_ldflags(version: str, kubernetes: tuple[int, int]) -> str:
    """The ``-X`` stamps Helm's Makefile sets, so the binary reports what it is."""
    major, minor = kubernetes
    stamps = {
        "helm.sh/helm/v3/internal/version.version": version,
        "helm.sh/helm/v3/internal/version.gitTreeState": "clean",
        "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor": str(major),
        "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor": str(minor),
        "helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor": str(major),
        "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor": str(minor),
    }
    return " ".join(["-s", "-w", *(f"-X {name}={value}" for name, value in stamps.items())])


def build(version: str = HELM_VERSION) -> Path:
    """Build (or reuse) the helm binary of ``version``; return its path."""
    target = binary_path(version)
    if target.exists():
        return target
    go = require_tool("go", GO_INSTALL_HINT)
    module_dir = target.parent.parent / "module"
    module_dir.mkdir(parents=True, exist_ok=True)
    env = {"GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
    info = json.loads(
        run([go, "mod", "download", "-json", f"helm.sh/helm/v3@{version}"],
            cwd=module_dir, env=env, what=f"downloading helm.sh/helm/v3@{version}")
    )
    kubernetes = kubernetes_version_of(Path(info["GoMod"]).read_text())
    (module_dir / "go.mod").write_text(wrapper_go_mod(version))
    (module_dir / "go.sum").touch()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name("helm.tmp")
    run([go, "build", "-trimpath", "-ldflags", version_ldflags(version, kubernetes),
         "-o", partial, HELM_PACKAGE],
        cwd=module_dir, env={**env, "GOMAXPROCS": str(os.cpu_count() or 2)},
        what=f"building helm {version} from the Go module proxy")
    partial.rename(target)
    return target


REPO_ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = REPO_ROOT / "charts" / "streamtrain-operator"
"""The operator's chart."""
CRDS_DIR = REPO_ROOT / "crds"
"""The generated CRDs: the one source of the chart's copy."""
CHART_CRDS_DIR = CHART_DIR / "files" / "crds"
"""The chart's copy of ``crds/``, which its CRD template reads."""
RBAC_DIR = REPO_ROOT / "operator" / "rbac"
"""The operator's least-privilege RBAC: the one source of the chart's rules."""
RBAC_FILES = ("clusterrole.yaml", "role.yaml", "tokenreview.yaml")
"""The files of ``operator/rbac/`` whose rules the chart grants."""
CHART_RBAC_DIR = CHART_DIR / "files" / "rbac"
"""The chart's copy of those files, which its RBAC template reads."""
INSTALL_MANIFEST = REPO_ROOT / "gitops" / "kustomize" / "base" / "install.yaml"
"""The chart rendered with its defaults, for ``kubectl apply`` and kustomize."""
INSTALL_RELEASE = "streamtrain-operator"
INSTALL_NAMESPACE = "streamtrain-system"
HELM_TIMEOUT_S = 120.0
"""Seconds a single helm command may take (a real install waits for nothing)."""


def helm(
    *arguments: str | os.PathLike[str],
    kubeconfig: Path | None = None,
    timeout_s: float = HELM_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run helm with private config and cache folders; never raises on a non-zero exit."""
    state = cache_root() / "helm" / "state"
    env = {
        **os.environ,
        "HELM_CONFIG_HOME": str(state / "config"),
        "HELM_CACHE_HOME": str(state / "cache"),
        "HELM_DATA_HOME": str(state / "data"),
    }
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run(
        [str(build()), *(str(argument) for argument in arguments)],
        env=env, capture_output=True, text=True, timeout=timeout_s, check=False,
    )


def template(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = INSTALL_RELEASE,
    namespace: str = INSTALL_NAMESPACE,
    chart: Path = CHART_DIR,
    extra: Sequence[str] = (),
) -> str:
    """``helm template`` of the chart with ``values``; raises with helm's message on failure."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values_file:
        yaml.safe_dump(dict(values or {}), values_file)
        values_file.flush()
        completed = helm("template", release, chart, "--namespace", namespace,
                         "--values", values_file.name, *extra)
    if completed.returncode != 0:
        raise LocalPartError(f"helm template failed: {completed.stderr.strip()}")
    return completed.stdout


def install_manifest() -> str:
    """The plain install manifest: the chart with its defaults, in its own namespace."""
    header = (
        "# Generated by `python -m localparts.helm sync` from charts/streamtrain-operator\n"
        f"# (release {INSTALL_RELEASE!r}, namespace {INSTALL_NAMESPACE!r}, default values);"
        " do not edit.\n"
    )
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": INSTALL_NAMESPACE,
                     "labels": {"app.kubernetes.io/part-of": "streamtrain"}},
    }
    return header + "---\n" + yaml.safe_dump(namespace, sort_keys=False) + template()


def chart_copies() -> dict[Path, str]:
    """The chart's copies of the CRDs and RBAC files, with the text they should have."""
    expected = {CHART_CRDS_DIR / source.name: source.read_text()
                for source in sorted(CRDS_DIR.glob("*.yaml"))}
    if not expected:
        raise LocalPartError(f"no CRDs in {CRDS_DIR}: run python -m streamtrain_operator.crd")
    for name in RBAC_FILES:
        expected[CHART_RBAC_DIR / name] = (RBAC_DIR / name).read_text()
    return expected


def _orphans(copies: dict[Path, str]) -> list[Path]:
    """Files in the chart's copy folders that no source has any more."""
    found = [*CHART_CRDS_DIR.glob("*.yaml"), *CHART_RBAC_DIR.glob("*.yaml")]
    return [path for path in found if path not in copies]


def _differs(path: Path, text: str) -> bool:
    return not path.exists() or path.read_text() != text


def stale_files() -> list[Path]:
    """Derived files that differ from their sources, and chart copies no source has.

    The install manifest is checked only once the chart's copies are fresh
    (it is rendered from them).
    """
    copies = chart_copies()
    stale = [path for path, text in copies.items() if _differs(path, text)]
    stale += _orphans(copies)
    if not stale and _differs(INSTALL_MANIFEST, install_manifest()):
        stale.append(INSTALL_MANIFEST)
    return stale


def sync() -> list[Path]:
    """Rewrite the stale derived files, the chart's copies first; return what changed."""
    copies = chart_copies()
    changed = []
    for path in _orphans(copies):
        path.unlink()
        changed.append(path)
    for path, text in copies.items():
        if _differs(path, text):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    manifest = install_manifest()
    if _differs(INSTALL_MANIFEST, manifest):
        INSTALL_MANIFEST.parent.mkdir(parents=True, exist_ok=True)
        INSTALL_MANIFEST.write_text(manifest)
        changed.append(INSTALL_MANIFEST)
    return changed


def main(argv: list[str] | None = None) -> int:
    """``build`` prints the helm binary's path; ``sync [--check]`` updates the derived files."""
    parser = argparse.ArgumentParser(prog="python -m localparts.helm")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("build", help="build (or reuse) the pinned helm binary")
    sync_parser = commands.add_parser("sync", help="update the chart's CRDs and install.yaml")
    sync_parser.add_argument("--check", action="store_true", help="fail when a file is stale")
    args = parser.parse_args(argv)
    if args.command == "sync":
        if args.check:
            stale = stale_files()
            for path in stale:
                print(f"{path.relative_to(REPO_ROOT)} is stale: run python -m localparts.helm sync",
                      file=sys.stderr)
            return 1 if stale else 0
        for path in sync():
            print(f"wrote {path.relative_to(REPO_ROOT)}")
        return 0
    print(build())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
