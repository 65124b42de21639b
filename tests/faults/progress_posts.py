"""Scenario: progress posts that must not write — forged tokens, figures out of range, bodies
that are not reports.

Job `victim` trains (its pod pending: no kubelet is needed to post). Then:
- posts with tokens of `victim`'s own audience, each bound to a pod that is
  not one of its pods: a bare pod named like its pods and carrying its uid
  label, the same without the label, the pod of another job (`other`), a
  pod in another namespace, a pod controlled by a Job that carries the
  label but is not the job's; and a token bound to no pod. Each is refused,
  with the same answer as a post for a job that does not exist or a post
  without a token, and `victim`'s status (`lastProgressTime` included)
  stays as it was: before any real post, and again after one;
- figures out of range (accuracy 1e9, AUC -7, records 1e18 of 1, epoch 999 of
  3, an ETA of 1e15 s, ...) or not finite (NaN, Infinity as JSON literals),
  from the job's own pod: each refused with 400 naming the field, status
  unchanged;
- malformed and random bodies: never a 5xx.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import kubernetes

from tests.e2e.harness import Jobs, OperatorProcess, eventually, install_streamtrain_crd
from tests.e2e.progress_client import bare_pod, pod_token, post, published_ca
from tests.faults.figures import Figure, figure
from workload.contract import PROGRESS_MIN_INTERVAL_S, progress_audience

SCENARIO = "progress posts"
SPEC: dict[str, Any] = {"kafka": {"bootstrapServers": "127.0.0.1:9092"},
                        "train": {"topic": "susy-train", "epochs": 3}}
REPORT: dict[str, Any] = {"mode": "train", "records": 640, "recordsTotal": 6400, "epoch": 0,
                          "epochs": 3, "recordsPerSecond": 320.0, "percent": 10.0,
                          "etaSeconds": 18, "loss": 0.61, "accuracy": 0.7}
FORGED: dict[str, Any] = {**REPORT, "records": 6390, "percent": 99.9, "etaSeconds": 1,
                          "accuracy": 0.999}
"""What an impostor would like the status to say."""

OUT_OF_RANGE: list[tuple[str, dict[str, Any]]] = [
    ("accuracy", {"accuracy": 1e9}),
    ("auc", {"auc": -7}),
    ("records", {"records": 10**18, "recordsTotal": 1}),
    ("records", {"records": 7000}),
    ("epoch", {"epoch": 999, "epochs": 3}),
    ("etaSeconds", {"etaSeconds": 10**15}),
    ("percent", {"percent": 150.0}),
    ("loss", {"loss": -1.0}),
    ("recordsPerSecond", {"recordsPerSecond": 1e15}),
    ("records", {"records": -5}),
]
"""(field the answer must name, figures replacing the report's)."""

NON_FINITE: list[tuple[str, bytes]] = [
    (field, json.dumps({**REPORT, field: 0.5}).replace("0.5", literal).encode())
    for field, literal in (("accuracy", "NaN"), ("loss", "Infinity"), ("percent", "-Infinity"),
                           ("auc", "NaN"), ("recordsPerSecond", "Infinity"))]

MALFORMED: list[bytes] = [b"", b"{", b"[]", b"null", b"7", b'"train"', b"\xff\xfe\x00",
                          b'{"mode": "dance", "records": 1}', b'{"mode": "train"}',
                          b'{"mode": "train", "records": "many"}',
                          b'{"mode": "train", "records": 1, "percent": "1e400"}',
                          b'{"mode": "train", "records": 1e400}',
                          b'{"mode": "train", "records": 1, "loss": 1e309}',
                          b"[" * 5000 + b"]" * 5000, b'{"a": "' + b"x" * 20_000 + b'"}']


def _random_body(rng: random.Random) -> bytes:
    """A body as a careless or hostile client might send: a mangled report or random bytes."""
    if rng.random() < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    body: dict[str, Any] = dict(REPORT)
    for _ in range(rng.randrange(1, 4)):
        field = rng.choice([*REPORT, "extra"])
        body[field] = rng.choice([None, True, -1, 0, 2**63, 1e308, -1e-300, "x", [], {},
                                  rng.uniform(-1e6, 1e6), rng.randrange(-10, 10**6)])
    return json.dumps(body).encode()


def forged_and_invalid_posts(api: kubernetes.client.ApiClient, kubeconfig: Path,
                             namespace: str, work: Path, random_bodies: int = 60,
                             seed: int = 22) -> list[Figure]:
    """Run the scenario in `namespace` (which must exist); return its figures."""
    install_streamtrain_crd(api)
    core: Any = kubernetes.client.CoreV1Api(api)
    elsewhere = f"{namespace[:50]}-x{uuid.uuid4().hex[:4]}"
    core.create_namespace({"metadata": {"name": elsewhere}})
    operator = OperatorProcess(kubeconfig, namespace, work / "operator.log").start()
    try:
        return _scenario(Jobs(api, namespace), core, operator, elsewhere, random_bodies,
                         random.Random(seed))
    finally:
        operator.stop()
        core.delete_namespace(elsewhere)


def _pending_pod(jobs: Jobs, child: str, operator: OperatorProcess) -> Any:
    return eventually(lambda: next(iter(jobs.pods(child)), None), 60, f"a pod of {child}",
                      operator.tail)


def _scenario(jobs: Jobs, core: Any, operator: OperatorProcess, elsewhere: str,
              random_bodies: int, rng: random.Random) -> list[Figure]:
    namespace = jobs.namespace
    uid = jobs.create("victim", SPEC)["metadata"]["uid"]
    jobs.create("other", SPEC)
    own_pod = _pending_pod(jobs, "victim-train", operator)
    other_pod = _pending_pod(jobs, "other-train", operator)
    ca = published_ca(core, namespace)
    path = f"/progress/{namespace}/victim"
    audience = progress_audience(namespace, "victim", uid)
    label = {"streamtrain.dev/job-uid": uid}
    impostor: Any = jobs.batch.create_namespaced_job(namespace, {
        "metadata": {"name": "victim-train-impostor", "labels": label},
        "spec": {"suspend": True, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "forged:0", "command": ["true"]}]}}}})
    owned_by_impostor = [{"apiVersion": "batch/v1", "kind": "Job", "name": "victim-train-impostor",
                          "uid": impostor.metadata.uid, "controller": True}]
    pod_token(core, elsewhere, audience, None)  # waits for that namespace's ServiceAccount
    forgeries = {
        "a bare pod with the job's label": pod_token(core, namespace, audience, bare_pod(
            core, namespace, "victim-train-forged", label)),
        "a bare pod without it": pod_token(core, namespace, audience, bare_pod(
            core, namespace, "victim-train-unlabelled", {})),
        "the pod of another job": pod_token(core, namespace, audience, other_pod),
        "a pod in another namespace": pod_token(core, elsewhere, audience, bare_pod(
            core, elsewhere, "victim-train-elsewhere", label)),
        "a pod of a Job the job does not own": pod_token(core, namespace, audience, bare_pod(
            core, namespace, "victim-train-impostor-0", label, owned_by_impostor)),
        "no pod": pod_token(core, namespace, audience, None),
    }
    baseline = {post(operator, f"/progress/{namespace}/nobody", None, REPORT, ca),
                post(operator, path, None, REPORT, ca)}

    def forge() -> list[tuple[str, tuple[int, str]]]:
        return [(what, post(operator, path, token, FORGED, ca)) for what, token in
                forgeries.items()]

    before = jobs.status("victim").get("progress")
    first = forge()
    untouched_before = jobs.status("victim").get("progress") == before is None
    own = pod_token(core, namespace, audience, own_pod)
    accepted = eventually(lambda: post(operator, path, own, REPORT, ca)[0] == 204, 30,
                          "the job's own pod's post", operator.tail)
    written = eventually(lambda: jobs.status("victim").get("progress"), 10, "status.progress")
    time.sleep(PROGRESS_MIN_INTERVAL_S + 0.5)  # past the write throttle: a wrong accept would write
    second = forge()
    untouched_after = jobs.status("victim").get("progress") == written
    answers = {answer for _, answer in first + second} | baseline
    refused = sum(answer[0] == 403 for _, answer in first + second)

    time.sleep(PROGRESS_MIN_INTERVAL_S + 0.5)
    named = 0
    invalid = [(field, json.dumps({**REPORT, **figures}).encode())
               for field, figures in OUT_OF_RANGE] + NON_FINITE
    for field, body in invalid:
        status, text = post(operator, path, own, body, ca)
        named += status == 400 and field in text
    figures_untouched = jobs.status("victim").get("progress") == written
    server_errors = [(body[:40], status) for body in
                     [*MALFORMED, *(_random_body(rng) for _ in range(random_bodies))]
                     for status, _ in [post(operator, path, own, body, ca)] if status >= 500]
    return [
        figure(SCENARIO, "the job's own pod posts", "accepted (204)",
               "accepted" if accepted else "refused", bool(accepted)),
        figure(SCENARIO, f"posts bound to pods the job does not own ({', '.join(forgeries)}), "
               "before and after a real post", f"{2 * len(forgeries)}/{2 * len(forgeries)} "
               "refused (403)", f"{refused}/{2 * len(forgeries)}",
               refused == 2 * len(forgeries)),
        figure(SCENARIO, "answers to a forged token, no token, a job that does not exist",
               "1 (nothing to tell them apart)", len(answers), len(answers) == 1),
        figure(SCENARIO, "status.progress after the refused posts (lastProgressTime included)",
               "unchanged", "unchanged" if untouched_before and untouched_after else
               f"changed: {jobs.status('victim').get('progress')}",
               untouched_before and untouched_after),
        figure(SCENARIO, "figures out of range or not finite, from the job's own pod",
               f"{len(invalid)}/{len(invalid)} refused (400) naming the field",
               f"{named}/{len(invalid)}", named == len(invalid)),
        figure(SCENARIO, "status.progress after the refused figures", "unchanged",
               "unchanged" if figures_untouched else "changed", figures_untouched),
        figure(SCENARIO, f"malformed and random bodies ({len(MALFORMED)} + {random_bodies}): "
               "server errors", "0", len(server_errors), not server_errors),
    ]
