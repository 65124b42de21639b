"""Scenario: the evaluator SIGKILLed at random points, then its broker restarted mid-run.

The topic is evaluated once without faults (the reference figures), then
again under another consumer group while the evaluator is SIGKILLed at
`kills` seeded random points (each a random progress target plus a random
delay, so kills land inside chunks and between a ledger save and its
commit), then run once more while the broker is SIGKILLed and started again
on the same port and data (a broker crash), then, if that run did not finish, to the end.

Lost and duplicated records: the count must equal the topic's end offsets
and every aggregate (confusion matrix, loss, AUC) must equal the reference
run's; a record counted twice and another lost would leave the count right
but change the aggregates.
"""

from __future__ import annotations

import functools
import itertools
import random
import subprocess
import time
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient

from localparts import kafka as local_kafka
from tests.faults import processes
from tests.faults.figures import Figure, figure
from tests.integration.modes_support import fill_topic, job_spec, save_tiny_model
from workload.artifacts import Artifacts
from workload.kafka.bounds import end_offsets
from workload.kafka.connection import KafkaConnection
from workload.modes.ledger import Ledger

SCENARIO = "evaluate: SIGKILLs + broker restart"
CRASH_RECOVERY = {"broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "500"}
"""Broker settings so a broker restarted after a crash is let back in within seconds: KRaft
holds a crashed broker's registration for `broker.session.timeout.ms` (9 s by default)."""


def ledger_progress(path: Path) -> int:
    """Records the ledger covers (0 when there is none yet)."""
    ledger = Ledger.load(path)
    return sum(ledger.next_offsets.values()) if ledger else 0


def evaluator_kills_and_broker_restart(work: Path, rows: int = 16_000, chunk: int = 400,
                                       kills: int = 10, seed: int = 20261125) -> list[Figure]:
    """Run the scenario on a broker of its own (restarted mid-run); return its figures."""
    broker = local_kafka.start(work / "kafka", extra_properties=CRASH_RECOVERY)
    try:
        return _scenario(broker, work, rows, chunk, kills, random.Random(seed))
    finally:
        broker.stop()


def _scenario(broker: local_kafka.KafkaBroker, work: Path, rows: int, chunk: int, kills: int,
              rng: random.Random) -> list[Figure]:
    bootstrap = broker.bootstrap_servers
    topic = "faults-evaluate"
    data, _, _ = fill_topic(bootstrap, topic, rows, seed=rng.randrange(1 << 30), partitions=2)
    artifacts = Artifacts(work / "out").prepare()
    save_tiny_model(artifacts.keras_model, data=data)

    def evaluation(group: str) -> list[str]:
        spec = job_spec(bootstrap, artifacts.root, evaluate={
            "topic": topic, "consumerGroup": group, "streamTimeoutMs": 0})
        path = processes.spec_file(spec, work / f"{group}.json")
        return processes.command(processes.EVALUATE_CHILD, path, artifacts.root, chunk)

    calm = processes.run_to_end(evaluation("calm"), timeout_s=120)
    if calm.returncode != 0:
        raise RuntimeError(f"the uninterrupted evaluation failed:\n{calm.stdout[-2000:]}")
    reference = processes.read_json(artifacts.results("evaluate"))
    assert reference is not None

    group = "faulted"
    command = evaluation(group)
    ledger = artifacts.ledger(group)
    killed = _kill_at_random_points(command, ledger, rows, chunk, kills, rng)
    restart = _restart_broker_mid_run(broker, command, ledger, chunk, work / "restart-run.log")
    if restart["exitCode"] != 0:  # the restarted run did not finish: one more run ends it
        processes.run_to_end(command, timeout_s=120)
    progress = ledger_progress(ledger)
    measured = processes.read_json(artifacts.results("evaluate")) or {}
    ends = end_offsets(KafkaConnection(bootstrap), topic)
    return _figures(measured, reference, ends, committed_offsets(bootstrap, group, topic),
                    killed, kills, restart, progress)


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The consumer group's committed offsets on `topic`, as the broker holds them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def _kill_at_random_points(command: list[str], ledger: Path, rows: int, chunk: int,
                           kills: int, rng: random.Random) -> list[tuple[int, int]]:
    """SIGKILL one run per seeded target (records covered); (progress, return code) of each."""
    step = 2 * chunk  # one chunk of each of the two partitions
    # Kills in the first 70% of the topic: the broker restart needs a run with work left.
    targets = sorted(rng.sample(range(1, int(0.7 * rows) // step), kills))
    outcomes = []
    for target in targets:
        child = processes.start(command)
        covered = functools.partial(_covers, ledger, target * step)
        processes.wait_for(covered, child, 90, f"the evaluator to cover {target * step} records")
        time.sleep(rng.uniform(0.0, 0.05))  # inside the next chunk, or between save and commit
        outcomes.append((ledger_progress(ledger), processes.sigkill(child)))
    return outcomes


def _covers(ledger: Path, records: int) -> bool:
    return ledger_progress(ledger) >= records


def _restart_broker_mid_run(broker: local_kafka.KafkaBroker, command: list[str], ledger: Path,
                            chunk: int, log: Path) -> dict[str, Any]:
    """Start a run; once it has covered another chunk, crash the broker (SIGKILL) and start it
    again on the same port and data; see how the run ends."""
    before = ledger_progress(ledger)
    child = processes.start(command, log)
    processes.wait_for(lambda: ledger_progress(ledger) > before, child, 90,
                       "the evaluator to resume")
    at = ledger_progress(ledger)
    started = time.monotonic()
    local_kafka.restart(broker, hard=True)
    down_s = time.monotonic() - started
    try:
        code = child.wait(90)
    except subprocess.TimeoutExpired:  # the run hangs on the lost broker: count it as killed
        code = processes.sigkill(child)
    return {"restartedAt": at, "downSeconds": down_s, "exitCode": code,
            "progressAfter": ledger_progress(ledger)}


def _figures(measured: dict[str, Any], reference: dict[str, Any], ends: dict[int, int],
             committed: dict[int, int], killed: list[tuple[int, int]], kills: int, restart: dict[str, Any],
             progress: int) -> list[Figure]:
    records = sum(ends.values())
    count = int(measured.get("metrics", {}).get("recordsEvaluated", -1))
    same = {key: measured.get("figures", {}).get(key) == reference["figures"].get(key)
            for key in ("confusionMatrix", "auc", "accuracy")}
    loss_gap = abs(float(measured.get("figures", {}).get("loss", float("inf")))
                   - float(reference["figures"]["loss"]))
    mid_run = sum(1 for at, code in killed if code == -9 and at < records)
    reached = [at for at, _ in killed] + [restart["restartedAt"], restart["progressAfter"], progress]
    forward = all(a <= b for a, b in itertools.pairwise(reached))
    return [
        figure(SCENARIO, "SIGKILLs at random points, mid-run", f"{kills}", mid_run,
               mid_run == kills),
        figure(SCENARIO, "broker crashes + restarts during a run", "1, with records left",
               f"1 (at {restart['restartedAt']} of {records} records, down "
               f"{restart['downSeconds']:.1f} s; that run exited {restart['exitCode']} at "
               f"{restart['progressAfter']})", restart["restartedAt"] < records),
        figure(SCENARIO, "each restarted run resumed from the ledger",
               "progress never goes back", " -> ".join(str(at) for at in reached), forward),
        figure(SCENARIO, "records counted", f"{records} (end offsets)", count, count == records),
        figure(SCENARIO, "records lost", "0", max(0, records - count), count >= records),
        figure(SCENARIO, "records counted twice", "0", max(0, count - records),
               0 <= count <= records),
        figure(SCENARIO, "figures equal the uninterrupted run's",
               "confusion matrix, accuracy, AUC equal; loss within 1e-6",
               "equal" if all(same.values()) and loss_gap <= 1e-6 else f"differ: {same}",
               all(same.values()) and loss_gap <= 1e-6),
        figure(SCENARIO, "consumer group's committed offsets", f"= end offsets {ends}", committed,
               committed == ends and progress == records),
    ]
