"""Posting to the operator's progress endpoint as a pod would, or as someone who is not one.

Tokens come from the API server's TokenRequest (what the kubelet does for a
projected token, and what anyone may do who may create a pod or a token in
a namespace); posts go over HTTPS, verified against the CA the operator
published in the namespace (`contract.PROGRESS_CA_CONFIGMAP`).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import kubernetes

from tests.e2e.harness import OperatorProcess, eventually
from workload.contract import PROGRESS_CA_CONFIGMAP, PROGRESS_CA_KEY


def pod_token(core: Any, namespace: str, audience: str, pod: Any | None,
              account: str = "default") -> str:
    """A token of `account` in `namespace` for `audience`, bound to `pod` (name and uid) unless
    `None`: what `kubectl create token --bound-object-kind Pod` and a projected volume get."""
    spec: dict[str, Any] = {"audiences": [audience], "expirationSeconds": 600}
    if pod is not None:
        spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name,
                                  "uid": pod.metadata.uid}

    def request() -> Any:
        try:
            return core.create_namespaced_service_account_token(account, namespace,
                                                                {"spec": spec})
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None  # the namespace's default ServiceAccount is not made yet
            raise

    return str(eventually(request, 30, f"the {account} ServiceAccount of {namespace}")
               .status.token)


def published_ca(core: Any, namespace: str) -> str:
    """The CA the operator published in `namespace` (PEM), once it has."""
    def read() -> str | None:
        try:
            found = core.read_namespaced_config_map(PROGRESS_CA_CONFIGMAP, namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return str((found.data or {}).get(PROGRESS_CA_KEY) or "") or None

    return str(eventually(read, 30, f"the progress CA in {namespace}"))


def post(operator: OperatorProcess, path: str, token: str | None, body: dict[str, Any] | bytes,
         ca_pem: str) -> tuple[int, str]:
    """POST a progress report over HTTPS, verifying the operator against `ca_pem`: the HTTP
    status and the answer's text."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"https://127.0.0.1:{operator.progress_port}{path}", data=data, method="POST",
        headers={"Content-Type": "application/json",
                 **({"Authorization": f"Bearer {token}"} if token else {})})
    context = ssl.create_default_context(cadata=ca_pem)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def bare_pod(core: Any, namespace: str, name: str, labels: dict[str, str],
             owners: list[dict[str, Any]] | None = None) -> Any:
    """A pod nobody schedules (no kubelet takes it), named and labelled at will."""
    return core.create_namespaced_pod(namespace, {
        "metadata": {"name": name, "labels": labels, "ownerReferences": owners or []},
        "spec": {"automountServiceAccountToken": False,
                 "containers": [{"name": "c", "image": "forged:0", "command": ["true"]}]}})
