"""The operator's ServiceAccount holds exactly the shipped least-privilege grants, no more.

`kubectl auth can-i --list` asks the real RBAC authorizer what the account may
do. Its rules, minus what every authenticated account gets, must equal the
table below: a new verb, resource or wildcard in `operator/rbac/` fails here
until the table (and so the review) agrees. Single `can-i` questions then pin
what must stay impossible: any Secrets access, writing a job's spec, anything
cluster-scoped beyond reading namespaces and CRDs and TokenReviews (the
progress endpoint's check of a pod's token), and (for the per-namespace
Role) anything outside the watched namespace. The Helm chart reads its rules from a copy of
the same files (`charts/streamtrain-operator/files/rbac/`, kept equal by a unit test), so
these checks hold for a chart install too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Kube
from tests.e2e.harness import install_streamtrain_crd
from tests.integration.test_helm_chart import can_i
from tests.integration.test_operator_rbac import _grant

ACCOUNT = "streamtrain-operator"
BARE_ACCOUNT = "no-grants"
"""A ServiceAccount bound to nothing: what it may do is what every account may do."""

Rule = tuple[str, str]
"""(resource.group, verb) as `kubectl auth can-i --list` names them; a rule limited to some
objects by name has them after the resource: `configmaps/[a b]`."""

NAMESPACED_RULES: frozenset[Rule] = frozenset({
    *(("streamingtrainingjobs.streamtrain.dev", verb) for verb in ("get", "list", "watch")),
    *(("streamingtrainingjobs.streamtrain.dev/status", verb) for verb in ("get", "patch")),
    *(("jobs.batch", verb) for verb in ("create", "get", "list", "watch", "patch", "delete")),
    *(("pods", verb) for verb in ("get", "list", "watch")),
    *(("deployments.apps", verb)
      for verb in ("create", "get", "list", "watch", "patch", "delete")),
    *(("replicasets.apps", verb) for verb in ("get", "list", "watch")),
    ("services", "create"), ("services", "get"),
    # The progress endpoint's CA for the pods: ConfigMaps created, only that one changed.
    ("configmaps", "create"), ("configmaps/[streamtrain-progress-ca]", "patch"),
    ("events", "create"), ("events", "patch"),
    ("events.events.k8s.io", "create"), ("events.events.k8s.io", "patch"),
    *(("kafkas.kafka.strimzi.io", verb) for verb in ("get", "list", "watch")),
    *(("kafkausers.kafka.strimzi.io", verb) for verb in ("get", "list", "watch")),
    ("kafkatopics.kafka.strimzi.io", "create"), ("kafkatopics.kafka.strimzi.io", "get"),
    ("workloads.kueue.x-k8s.io", "list"),
})
"""Everything the operator may do in a namespace it watches (both variants)."""

TOKEN_REVIEWS: frozenset[Rule] = frozenset({("tokenreviews.authentication.k8s.io", "create")})
"""Checking a pod's progress token: cluster-scoped, so in both variants, and reading nothing."""

CLUSTER_READ_RULES: frozenset[Rule] = frozenset({
    *(("customresourcedefinitions.apiextensions.k8s.io", verb)
      for verb in ("get", "list", "watch")),
    *(("namespaces", verb) for verb in ("get", "list", "watch")),
})
"""The cluster-wide variant's extra: noticing CRDs and namespaces that appear while it runs."""

EXPECTED: dict[str, frozenset[Rule]] = {
    "clusterrole": NAMESPACED_RULES | CLUSTER_READ_RULES | TOKEN_REVIEWS,
    "role": NAMESPACED_RULES | TOKEN_REVIEWS,
}

SECRET_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete",
                "deletecollection")
SPEC_WRITES = ("create", "update", "patch", "delete", "deletecollection")
CLUSTER_WRITES = [(verb, resource) for verb in ("create", "update", "patch", "delete")
                  for resource in ("namespaces", "customresourcedefinitions.apiextensions.k8s.io",
                                   "clusterroles.rbac.authorization.k8s.io",
                                   "clusterrolebindings.rbac.authorization.k8s.io", "nodes",
                                   "persistentvolumes")]
ESCALATIONS = [("create", "pods"), ("create", "pods/exec"), ("create", "roles.rbac.authorization.k8s.io"),
               ("create", "rolebindings.rbac.authorization.k8s.io"),
               ("bind", "clusterroles.rbac.authorization.k8s.io"),
               ("escalate", "clusterroles.rbac.authorization.k8s.io"),
               ("impersonate", "serviceaccounts"), ("create", "serviceaccounts/token"),
               ("get", "configmaps"), ("patch", "configmaps"), ("delete", "configmaps"),
               ("update", "jobs.batch"), ("patch", "jobs.batch/status")]
"""Each would let the operator reach further than its jobs: none is granted."""


def listed_rules(kube: Kube, account: str, namespace: str) -> set[Rule]:
    """The (resource, verb) pairs `kubectl auth can-i --list` reports for `account`."""
    table = kube.cluster.kubectl(
        "auth", "can-i", "--list", "--namespace", namespace,
        f"--as=system:serviceaccount:{kube.namespace}:{account}").stdout.splitlines()
    header = table[0]
    urls, names, verbs = (header.index(title) for title in
                          ("Non-Resource URLs", "Resource Names", "Verbs"))
    rules: set[Rule] = set()
    for line in table[1:]:
        resource = line[:urls].strip()
        if not resource:
            continue  # a non-resource URL (/api, /healthz): discovery, granted to everyone
        limited = line[names:verbs].strip()
        if limited != "[]":
            resource = f"{resource}/{limited}"
        rules.update((resource, verb) for verb in line[verbs:].strip(" []").split())
    return rules


def bare_account(kube: Kube) -> None:
    """Create the ServiceAccount bound to nothing, for the baseline."""
    core: Any = kube.cluster.core
    core.create_namespaced_service_account(kube.namespace, {"metadata": {"name": BARE_ACCOUNT}})


@pytest.fixture(params=sorted(EXPECTED))
def granted(request: pytest.FixtureRequest, kube: Kube) -> Iterator[str]:
    """The shipped RBAC variant bound to the operator's ServiceAccount in the test namespace."""
    install_streamtrain_crd(kube.cluster.api)  # `can-i` resolves resources by discovery
    suffix = kube.namespace[-6:]
    _grant(kube, request.param, suffix)
    bare_account(kube)
    yield str(request.param)
    kube.cluster.kubectl("delete", "clusterrole,clusterrolebinding", f"{ACCOUNT}-{suffix}",
                         f"{ACCOUNT}-tokenreview-{suffix}", "--ignore-not-found", check=False)


def test_operator_account_has_exactly_the_least_privilege_rules(
        kube: Kube, granted: str) -> None:
    everyone = listed_rules(kube, BARE_ACCOUNT, kube.namespace)
    operator = listed_rules(kube, ACCOUNT, kube.namespace)
    assert operator - everyone == EXPECTED[granted]
    assert not any("*" in resource or verb == "*" for resource, verb in operator)


def test_per_namespace_role_grants_nothing_outside_its_namespace(kube: Kube) -> None:
    _grant(kube, "role", kube.namespace[-6:])
    bare_account(kube)
    for elsewhere in ("default", "kube-system"):
        assert (listed_rules(kube, ACCOUNT, elsewhere)
                == listed_rules(kube, BARE_ACCOUNT, elsewhere) | TOKEN_REVIEWS)
    assert not can_i(kube, ACCOUNT, "list", "namespaces", kube.namespace)
    assert not can_i(kube, ACCOUNT, "list", "customresourcedefinitions.apiextensions.k8s.io",
                     kube.namespace)


def test_operator_account_cannot_touch_secrets_anywhere(kube: Kube, granted: str) -> None:
    for namespace in (kube.namespace, "default"):
        for verb in SECRET_VERBS:
            assert not can_i(kube, ACCOUNT, verb, "secrets", namespace), (granted, verb, namespace)


def test_operator_account_writes_job_status_but_never_spec(kube: Kube, granted: str) -> None:
    jobs = "streamingtrainingjobs.streamtrain.dev"
    assert can_i(kube, ACCOUNT, "patch", f"{jobs}/status", kube.namespace)
    assert not can_i(kube, ACCOUNT, "update", f"{jobs}/status", kube.namespace)
    for verb in SPEC_WRITES:
        assert not can_i(kube, ACCOUNT, verb, jobs, kube.namespace), (granted, verb)


def test_operator_account_cannot_write_cluster_scope_or_escalate(
        kube: Kube, granted: str) -> None:
    for verb, resource in [*CLUSTER_WRITES, *ESCALATIONS]:
        assert not can_i(kube, ACCOUNT, verb, resource, kube.namespace), (granted, verb, resource)
