"""The Kubernetes edge for the serving Deployment: observe it, create or update it, scale it.

Read from what the watches hold (`store.py`: the Deployment the job
controls), like the child Jobs. Created by its deterministic name
(`AlreadyExists` counts as success once it is found to be the job's own, so
a restarted operator makes no second one) and owned by the job, so deleting
the job deletes it and its pods. An existing Deployment is updated only
when the digest of what it should run (`deployment.TEMPLATE_DIGEST`:
replicas and pod template) differs, so a pass that changes nothing writes
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import kubernetes

from streamtrain_operator.builders import Manifest
from streamtrain_operator.children import create_or_own
from streamtrain_operator.deployment import TEMPLATE_DIGEST, serving_name
from streamtrain_operator.serving import ServingObservation

Body = Mapping[str, Any]
"""An object as the API serves it in JSON (camelCase)."""


def observe_serving(deployments: Sequence[Body]) -> ServingObservation | None:
    """The job's serving Deployment, as the store holds it (`None`: there is none)."""
    live = [item for item in deployments if not item["metadata"].get("deletionTimestamp")]
    if not live:
        return None
    deployment = live[0]
    return ServingObservation(
        replicas=int((deployment.get("spec") or {}).get("replicas") or 0),
        ready=int((deployment.get("status") or {}).get("readyReplicas") or 0))


def ensure_deployment(api: kubernetes.client.ApiClient, manifest: Manifest,
                      existing: Body | None = None) -> Body | None:
    """Create the Deployment unless it exists (`existing`: as the store holds it), else bring
    its replicas and pod template in line; the Deployment as the API returned it (JSON) when it
    was created or updated now, else `None`."""
    apps: Any = kubernetes.client.AppsV1Api(api)
    if existing is None:
        created, existing = create_or_own(api, manifest, "Deployment",
                                          apps.create_namespaced_deployment,
                                          apps.read_namespaced_deployment)
        if created is not None:
            return created
    assert existing is not None
    wanted = manifest["metadata"]["annotations"][TEMPLATE_DIGEST]
    if (existing["metadata"].get("annotations") or {}).get(TEMPLATE_DIGEST) == wanted:
        return None
    updated = apps.patch_namespaced_deployment(
        existing["metadata"]["name"], existing["metadata"]["namespace"],
        {"metadata": {"annotations": {TEMPLATE_DIGEST: wanted}},
         "spec": {"replicas": manifest["spec"]["replicas"],
                  "template": manifest["spec"]["template"]}})
    found: Body = api.sanitize_for_serialization(updated)  # type: ignore[no-untyped-call]
    return found


def scale_serving(api: kubernetes.client.ApiClient, existing: Body | None,
                  replicas: int) -> None:
    """Set an existing serving Deployment's replicas (a missing one stays missing)."""
    if existing is None or (existing.get("spec") or {}).get("replicas") == replicas:
        return
    apps: Any = kubernetes.client.AppsV1Api(api)
    try:
        apps.patch_namespaced_deployment(existing["metadata"]["name"],
                                         existing["metadata"]["namespace"],
                                         {"spec": {"replicas": replicas}})
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise


def delete_serving(api: kubernetes.client.ApiClient, namespace: str, job_name: str,
                   deployments: Sequence[Body]) -> None:
    """Delete the serving Deployment and its pods (TTL after the job finished), when the store
    holds one."""
    if not deployments:
        return
    apps: Any = kubernetes.client.AppsV1Api(api)
    try:
        apps.delete_namespaced_deployment(serving_name(job_name), namespace,
                                          propagation_policy="Background")
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise
