"""Scenario: a serving replica SIGKILLed at random points and its broker restarted, mid-stream.

The replica (a child process, `serve_child.py`) serves a two-partition topic
into an output topic, exactly once through Kafka transactions. At `kills`
seeded points (records written to the output, counted by its end offsets,
which include open transactions: a kill mostly lands inside one) it is
SIGKILLed and started again as the same replica (the same
`transactional.id`, which fences the dead one and aborts its open
transaction). Once half the records are answered, the broker is stopped and
started again on the same port and data while the replica runs; the last
quarter of the input is written only after the broker serves again, so
serving goes on after the restart. The run ends with a SIGTERM once the
consumer group has committed the input's end.

Measured by a downstream `read_committed` consumer of the output topic: one
prediction per good input record (none lost), no input (partition, offset)
answered twice, nothing answered that was not in the input; the dead-letter
topic holds each bad record once. A replica that exits on a fatal error (a
fenced producer, a transactional call that hangs after the restart) is
started again, as Kubernetes restarts its container; the exits are counted.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from localparts import kafka as local_kafka
from tests.faults import processes
from tests.faults.evaluate_faults import committed_offsets
from tests.faults.figures import Figure, figure
from tests.integration.modes_support import save_tiny_model
from tests.integration.serve_support import (
    answered_twice,
    produce_with_headers,
    read_committed,
    read_predictions,
    serve_spec,
)
from workload.artifacts import Artifacts
from workload.datagen.records import corrupt, encode
from workload.datagen.synthetic import generate
from workload.kafka.bounds import end_offsets
from workload.kafka.connection import KafkaConnection

SCENARIO = "serve: SIGKILLs + broker restart"
PARTITIONS = 2
SERVE_CHILD = processes.INTEGRATION / "serve_child.py"
SESSION_SETTINGS = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"}
"""The broker's shortest session: a killed member's partitions are handed on after at most 6 s."""
BAD_FRACTION = 0.01
KILL_AFTER = 100
"""Records (and markers) a started replica writes before the next kill may land: each kill
meets a replica at work, not one still joining its group."""


def serve_kills_and_broker_restart(work: Path, rows: int = 20_000, kills: int = 3,
                                   seed: int = 20261201, timeout_s: float = 400) -> list[Figure]:
    """Run the scenario on a broker of its own (restarted mid-stream); return its figures."""
    broker = local_kafka.start(work / "kafka")
    try:
        return _scenario(broker, work, rows, kills, seed, timeout_s)
    finally:
        broker.stop()


def _scenario(broker: local_kafka.KafkaBroker, work: Path, rows: int, kills: int, seed: int,
              timeout_s: float) -> list[Figure]:
    bootstrap = broker.bootstrap_servers
    rng = random.Random(seed)
    source, output, dead = "serve-faults-in", "serve-faults-out", "serve-faults-bad"
    group = "serve-faults"
    data = generate(rows, seed=seed % 1000)
    messages, made = corrupt(encode(data), BAD_FRACTION, seed)
    bad = sum(count for reason, count in made.items() if reason != "bad_key")
    early = rows * 3 // 4
    produce_with_headers(bootstrap, source, messages[:early], PARTITIONS)
    artifacts = Artifacts(work / "out").prepare()
    save_tiny_model(artifacts.keras_model, data=data)
    with_litert(artifacts, data.features)  # as a trainer exports it: replicas start in seconds
    spec = serve_spec(bootstrap, artifacts.root, source, output, consumerGroup=group,
                      streamTimeoutMs=-1,
                      batchSize=500, maxLatencyMs=100, data={"deadLetterTopic": dead},
                      kafka={"bootstrapServers": bootstrap, "config": SESSION_SETTINGS})
    command = processes.command(SERVE_CHILD, processes.spec_file(spec, work / "spec.json"),
                                artifacts.root, "0")
    log = work / "serve.log"
    kill_at = sorted(rng.randint(rows // 20, rows * 7 // 10) for _ in range(kills))
    killed: list[int] = []
    exits: list[int] = []
    restart: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    child, started_at = processes.start(command, log), 0
    ends: dict[int, int] = {}
    try:
        while True:
            written = _written(bootstrap, output)
            if time.monotonic() > deadline:
                child.send_signal(signal.SIGUSR1)  # its threads' stacks, in the log
                time.sleep(1)
            assert time.monotonic() < deadline, (
                f"{SCENARIO}: no end within {timeout_s} s: {written} records written, killed at "
                f"{killed}, restart {restart}, input ends {ends}, committed "
                f"{committed_or_none(bootstrap, group, source)}")
            if child.poll() is not None:  # a fatal error: restarted, as its pod would be
                exits.append(child.returncode)
                child, started_at = processes.start(command, log), written
            if kill_at and written >= kill_at[0] and written >= started_at + KILL_AFTER:
                kill_at.pop(0)  # each kill lands after the replica has written something
                processes.sigkill(child)
                killed.append(written)
                child, started_at = processes.start(command, log), written
            elif not restart and written >= rows // 2:
                restart = {"at": written, "stops": time.monotonic()}
                local_kafka.restart(broker)
                restart["downSeconds"] = time.monotonic() - restart["stops"]
                produce_with_headers(bootstrap, source, messages[early:], PARTITIONS, start=early)
                ends = end_offsets(KafkaConnection(bootstrap), source)
            elif ends and not kill_at and _caught_up(bootstrap, group, source, ends):
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        code = child.wait(60)
    except subprocess.TimeoutExpired:
        code = processes.sigkill(child)
    finally:
        if child.poll() is None:
            processes.sigkill(child)
    predictions = read_predictions(bootstrap, output)
    letters = read_committed(bootstrap, dead)
    return _figures(rows, bad, kills, killed, restart, exits, code, predictions, len(letters))


def with_litert(artifacts: Artifacts, sample: Any) -> None:
    """The LiteRT scorer beside the model, as the trainer exports it."""
    from workload.artifacts import file_digest
    from workload.model.build import load_model
    from workload.model.litert import export_litert

    outcome = export_litert(load_model(artifacts.keras_model), artifacts.keras_model,
                            file_digest(artifacts.keras_model), sample)
    assert outcome.ok, outcome.detail


def _written(bootstrap: str, topic: str) -> int:
    """Records in the output topic's partitions, committed or not (0 while unreachable)."""
    try:
        return sum(end_offsets(KafkaConnection(bootstrap), topic).values())
    except (KafkaException, TimeoutError, LookupError):
        return 0


def committed_or_none(bootstrap: str, group: str, topic: str) -> dict[int, int] | None:
    """The group's committed offsets (`None` while the coordinator cannot say)."""
    try:
        return committed_offsets(bootstrap, group, topic)
    except Exception:  # the group coordinator may be loading after the restart
        return None


def _caught_up(bootstrap: str, group: str, topic: str, ends: dict[int, int]) -> bool:
    committed = committed_or_none(bootstrap, group, topic) or {}
    return all(committed.get(partition, -1) >= end for partition, end in ends.items())


def _figures(rows: int, bad: int, kills: int, killed: list[int], restart: dict[str, Any],
             exits: list[int], code: int, predictions: list[Any],
             letters: int) -> list[Figure]:
    good = rows - bad
    sources = Counter(prediction.source for prediction in predictions)
    expected = {(index % PARTITIONS, index // PARTITIONS) for index in range(rows)}
    twice = answered_twice(predictions)
    unknown = len(set(sources) - expected)
    return [
        figure(SCENARIO, "faults", f"{kills} SIGKILLs, a broker restart, clean end",
               f"killed at {killed} records written; broker down "
               f"{restart.get('downSeconds', 0):.1f} s at {restart.get('at')}; "
               f"{len(exits)} exits for a restart (codes {exits}); last run exit {code}",
               len(killed) == kills and "downSeconds" in restart and code == 0),
        figure(SCENARIO, "predictions read_committed, each good input record",
               f"exactly once: {good} predictions, 0 twice, 0 missing",
               f"{len(predictions)} predictions of {len(sources)} inputs; {len(twice)} twice, "
               f"{good - len(sources) + unknown} missing, {unknown} unknown",
               len(predictions) == good == len(sources) and not twice and not unknown),
        figure(SCENARIO, "dead letters, each bad input record", f"{bad} once each",
               letters, letters == bad),
    ]
