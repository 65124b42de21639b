"""Prometheus metrics: jobs by phase, reconcile errors and latency, API requests by verb.

Served by `prometheus_client`'s own HTTP server on the metrics port.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from workload.contract import PHASES, Phase


class OperatorMetrics:
    """The operator's metrics in a registry of their own (tests create fresh ones)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.jobs = Gauge("streamtrain_jobs", "StreamingTrainingJobs by phase", ["phase"],
                          registry=self.registry)
        self.reconcile_errors = Counter("streamtrain_reconcile_errors",
                                        "Reconcile passes that raised", registry=self.registry)
        self.reconcile_seconds = Histogram("streamtrain_reconcile_seconds",
                                           "Duration of one reconcile pass",
                                           registry=self.registry)
        self.api_requests = Counter("streamtrain_api_requests",
                                    "Kubernetes API requests the operator sent, by HTTP method",
                                    ["verb"], registry=self.registry)
        self._phases: dict[str, Phase] = {}
        self._publish()

    def observe_phase(self, key: str, phase: Phase | None) -> None:
        """Record a job's phase (`None` once it is deleted)."""
        if phase is None:
            self._phases.pop(key, None)
        else:
            self._phases[key] = phase
        self._publish()

    def _publish(self) -> None:
        for phase in PHASES:
            self.jobs.labels(phase=phase).set(
                sum(1 for seen in self._phases.values() if seen == phase))

    def serve(self, address: str, port: int) -> None:
        """Serve `/metrics` on a background thread."""
        start_http_server(port, addr=address, registry=self.registry)
