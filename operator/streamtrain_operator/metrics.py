"""Prometheus metrics: jobs by phase, reconcile errors and latency, API requests by verb, the
resyncs' lists.

Served by `prometheus_client`'s own HTTP server on the metrics port.
"""

from __future__ import annotations

import threading

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
        self.resync_lists = Counter("streamtrain_resync_lists",
                                    "Lists the resyncs sent (among the GET requests): three per "
                                    "watched namespace and resync", registry=self.registry)
        self._phases: dict[str, Phase] = {}
        self._lock = threading.Lock()
        for phase in PHASES:
            self.jobs.labels(phase=phase).set(0)

    def observe_phase(self, key: str, phase: Phase | None) -> None:
        """Record a job's phase (`None` once it is deleted); the gauge moves by the change only,
        so a thousand jobs cost no more per event than one."""
        with self._lock:
            before = self._phases.pop(key, None) if phase is None else self._phases.get(key)
            if phase is not None:
                self._phases[key] = phase
        if before == phase:
            return
        if before is not None:
            self.jobs.labels(phase=before).dec()
        if phase is not None:
            self.jobs.labels(phase=phase).inc()

    def serve(self, address: str, port: int) -> None:
        """Serve `/metrics` on a background thread."""
        start_http_server(port, addr=address, registry=self.registry)
