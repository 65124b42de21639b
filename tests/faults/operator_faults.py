"""Scenario: the operator SIGKILLed at random points of one job's life, restarted each time.

The job runs train then evaluate on the real API server; no kubelet runs, so
the scenario finishes each pod by writing its status as a kubelet would.
The life has six stages (created, Training, trainer done, Evaluating,
evaluator done, Succeeded); each kill picks a stage and a delay (seeded),
then the operator starts again at once. Afterwards: exactly one child Job
per phase, one pod each, the status converged to Succeeded with the pods'
figures, and each transition's event posted at most twice (a kill between
posting an event and saving the status that records the transition repeats
the event once; the status is the record, the events a log).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes

from tests.e2e.harness import (
    Jobs,
    OperatorProcess,
    eventually,
    finish_pod,
    install_streamtrain_crd,
)
from tests.faults.figures import Figure, figure
from tests.integration.test_operator import EVALUATED, SPEC, TRAINED

SCENARIO = "operator: SIGKILLs through a job's life"
TRANSITIONS = ("Training", "Evaluating", "Succeeded")
STAGES = 6
MAX_KILL_DELAY_S = 3.0
"""A kill lands up to this long after its stage begins (kopf starts in about 1.5 s)."""


def operator_killed_through_a_job(api: kubernetes.client.ApiClient, kubeconfig: Path,
                                  namespace: str, work: Path, kills: int = 10,
                                  seed: int = 4242) -> list[Figure]:
    """Run the scenario in `namespace` (which must exist); return its figures."""
    install_streamtrain_crd(api)
    jobs = Jobs(api, namespace)
    operator = OperatorProcess(kubeconfig, namespace, work / "operator.log").start()
    try:
        return _scenario(jobs, operator, kills, random.Random(seed))
    finally:
        operator.stop()


def _scenario(jobs: Jobs, operator: OperatorProcess, kills: int,
              rng: random.Random) -> list[Figure]:
    name = "sturdy"
    plan = Counter(rng.randrange(STAGES) for _ in range(kills))
    done = 0
    started = time.monotonic()

    def phase(wanted: str) -> Callable[[], None]:
        return lambda: _wait(lambda: jobs.phase(name) == wanted, f"phase {wanted}",
                             jobs, operator, name)

    def complete(child: str, message: str) -> Callable[[], None]:
        def finish() -> None:
            pod = _wait(lambda: next((p for p in jobs.pods(child)
                                      if p.status.phase == "Pending"), None),
                        f"a pending pod of {child}", jobs, operator, name)
            finish_pod(jobs.core, pod, 0, message)
        return finish

    steps = [lambda: None, phase("Training"), complete(f"{name}-train", TRAINED),
             phase("Evaluating"), complete(f"{name}-evaluate", EVALUATED), phase("Succeeded")]
    jobs.create(name, SPEC)
    last_kill = time.monotonic()
    for stage, step in enumerate(steps):
        step()
        for _ in range(plan[stage]):
            time.sleep(rng.uniform(0.0, MAX_KILL_DELAY_S))
            operator.kill()
            operator.start()
            done += 1
            last_kill = time.monotonic()
    _wait(lambda: jobs.phase(name) == "Succeeded", "phase Succeeded", jobs, operator, name)
    converged_s = time.monotonic() - last_kill
    # Give a live operator a few passes to (wrongly) repeat anything, and its events time to post.
    time.sleep(3.0)
    return _figures(jobs, name, kills, done, converged_s, time.monotonic() - started)


def _wait(condition: Callable[[], Any], what: str, jobs: Jobs, operator: OperatorProcess,
          name: str) -> Any:
    return eventually(condition, 45, what,
                      lambda: f"status: {jobs.status(name)}\noperator log:\n{operator.tail()}")


def _figures(jobs: Jobs, name: str, kills: int, done: int, converged_s: float,
             total_s: float) -> list[Figure]:
    children = sorted(job.metadata.name for job in jobs.child_jobs())
    wanted = [f"{name}-evaluate", f"{name}-train"]
    pods = {child: len(jobs.pods(child)) for child in wanted}
    status = jobs.status(name)
    converged = (status.get("phase") == "Succeeded"
                 and status.get("metrics", {}).get("evalAccuracy") == 0.787
                 and status.get("metrics", {}).get("trainAccuracy") == 0.78
                 and status.get("trainer", {}).get("succeeded") == 1
                 and status.get("evaluator", {}).get("succeeded") == 1)
    events = Counter(event.reason for event in jobs.events(name))
    per_transition = {reason: events.get(reason, 0) for reason in (*TRANSITIONS, "JobCreated")}
    most = max(per_transition.values())
    return [
        figure(SCENARIO, "SIGKILLs at random points", str(kills), done, done == kills),
        figure(SCENARIO, "child Jobs", str(wanted), children, children == wanted),
        figure(SCENARIO, "pods per child Job", "1 each", pods, set(pods.values()) == {1}),
        figure(SCENARIO, "status converged", "Succeeded with both pods' figures",
               f"{status.get('phase')} {converged_s:.1f} s after the last kill "
               f"({total_s:.0f} s in all)", converged),
        figure(SCENARIO, "events per transition (JobCreated: per child)",
               "<= 2 each (at most one duplicate)", per_transition,
               most <= 2 and per_transition["JobCreated"] <= 4),
    ]
