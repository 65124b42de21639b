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


def counting_client(metrics: OperatorMetrics, connections: int = 10) -> CountingApiClient:
    """A client logged in as the pod's service account, or from the kubeconfig, keeping up to
    `connections` connections open (one per thread that may call at once; the client's own
    default is 5 per CPU, and a thread beyond it opens and drops a connection per request)."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = kubernetes.client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = max(connections,
                                                configuration.connection_pool_maxsize or 0)
    kubernetes.client.Configuration.set_default(configuration)
    # The client imports each API's module on first use (CoreV1Api alone takes about a second on
    # a busy machine): import them now, not in the first pass of the first job.
    for api in ("CoreV1Api", "BatchV1Api", "CustomObjectsApi", "AuthenticationV1Api"):
        getattr(kubernetes.client, api)
    return CountingApiClient(metrics)
