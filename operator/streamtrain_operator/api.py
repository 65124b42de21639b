"""The operator's Kubernetes API client, counting its requests by verb for `/metrics`.

In a pod it logs in with the pod's service account, elsewhere with the
kubeconfig (tests, a developer's machine). Every request the reconcile
passes and the progress endpoint make goes through this one client, so
`streamtrain_api_requests_total` shows what the operator costs the API
server (kopf's own watch streams are separate: one per resource kind).
"""

from __future__ import annotations

from typing import Any

import kubernetes

from streamtrain_operator.metrics import OperatorMetrics


class CountingApiClient(kubernetes.client.ApiClient):
    """An `ApiClient` that counts each request it sends."""

    def __init__(self, metrics: OperatorMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        """Send the request, counted under its HTTP method."""
        self._metrics.api_requests.labels(verb=method.upper()).inc()
        return super().call_api(method, url, *args, **kwargs)


def counting_client(metrics: OperatorMetrics) -> CountingApiClient:
    """A client logged in as the pod's service account, or from the kubeconfig."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    return CountingApiClient(metrics)
