"""kopf handler registration: watch events in, nothing else.

Jobs, their child Jobs and their pods are watched (the children by label,
selected on the API server); each event only tells the controller which job
to look at (`controller.py` decides when and runs the passes). The progress
endpoint (`progress.py`) serves HTTPS on kopf's event loop, with a certificate made at start
(`tls.py`). No timers,
no finalizers, no annotations: the operator writes only `status`, through
the status subresource, so jobs stay deletable while it is down. The API
client and the controller live in kopf's `memo`.
"""

from __future__ import annotations

from typing import Any

import kopf

from streamtrain_operator.api import counting_client
from streamtrain_operator.builders import JOB_UID_LABEL
from streamtrain_operator.controller import Controller
from streamtrain_operator.metrics import OperatorMetrics
from streamtrain_operator.progress import ProgressEndpoint
from streamtrain_operator.settings import CHILD_RESOURCES, OperatorSettings
from streamtrain_operator.store import Kind
from streamtrain_operator.tls import CaPublisher, make_serving_certificate, server_host
from workload.contract import API_GROUP
from workload.spec import API_VERSION, PLURAL


def register(settings: OperatorSettings, metrics: OperatorMetrics,
             registry: kopf.OperatorRegistry) -> None:
    """Register the handlers with `registry`."""

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def start(memo: kopf.Memo, **_: Any) -> None:
        # The workers, the event poster, the resync and the progress endpoint's threads.
        memo.api = counting_client(metrics, connections=settings.workers + 8)
        certificate = (make_serving_certificate(server_host(settings.progress_url))
                       if settings.progress_port else None)
        ca = (CaPublisher(certificate.ca_pem)
              if certificate is not None and settings.pods.progress_url else None)
        memo.controller = Controller(memo.api, settings, metrics, ca)
        memo.controller.start()
        memo.progress = ProgressEndpoint(memo.api, memo.controller)
        if certificate is not None:
            await memo.progress.start(settings.bind_address, settings.progress_port,
                                      certificate.ssl_context())

    @kopf.on.cleanup(registry=registry)
    async def stop(memo: kopf.Memo, **_: Any) -> None:
        await memo.progress.stop()
        memo.controller.stop()

    @kopf.on.event(API_GROUP, API_VERSION, PLURAL, registry=registry)
    def job_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        memo.controller.observe_job(type, body)

    for group, version, plural in CHILD_RESOURCES:
        kopf.on.event(group, version, plural, labels={JOB_UID_LABEL: kopf.PRESENT},
                      id=f"child-{plural}", registry=registry)(
            _child_handler(CHILD_KINDS[plural]))


CHILD_KINDS: dict[str, Kind] = {"jobs": "Job", "deployments": "Deployment",
                                "replicasets": "ReplicaSet", "pods": "Pod"}
"""The store's kind of each watched child resource (`settings.CHILD_RESOURCES`)."""


def _child_handler(kind: Kind) -> Any:
    """The event handler of one kind of child (`Job` or `Pod`)."""

    def child_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        memo.controller.observe_child(kind, type, body)

    return child_event
