"""Scenario: the online learner SIGKILLed at random points and its group rebalanced, mid-stream.

The learner (a child process) learns a two-partition topic, checkpointing
every `checkpoint_every` records. At `kills` seeded random points it is
SIGKILLed and started again on the same output folder; at `rebalances` other
points a second member joins its consumer group, takes partitions, reads
without committing and leaves. Each run of the learner logs a fingerprint of
every record it learns (`online_child.LearnedLog`), one log per run.

What counts is the model that is saved: a run killed after its last
checkpoint loses what it learned since, and its successor, resuming from
that checkpoint, learns those records again. So the records in the final
model are, per run, those it learned before the checkpoint the next run
resumed from (per partition: offsets below the checkpoint's positions, read
from the checkpoint after each kill), plus everything the last run learned.
Every produced record must be there exactly once: none twice, none skipped.
Record values are unique; a record's partition and offset follow from its
index (the producer writes round-robin into an empty topic).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from tests.faults import processes
from tests.faults.figures import Figure, figure
from tests.faults.online_faults import rebalance_in_background
from tests.integration.modes_support import job_spec, save_tiny_model
from tests.integration.online_child import fingerprints, read_learned
from workload.artifacts import Artifacts
from workload.datagen.records import encode
from workload.datagen.synthetic import generate
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import produce_messages

SCENARIO = "online: SIGKILLs + rebalances"
PARTITIONS = 2
BATCH = 128
SESSION_TIMEOUT_MS = 6000
"""The broker's minimum: a killed member's partitions are handed on after at most 6 s."""


def online_kills_and_rebalances(bootstrap: str, work: Path, rows: int = 60_000, kills: int = 5,
                                rebalances: int = 3, checkpoint_every: int = 4_000,
                                seed: int = 20261130, timeout_s: float = 300) -> list[Figure]:
    """Run the scenario against the broker at `bootstrap`; return its figures."""
    rng = random.Random(seed)
    topic = group = f"faults-online-kills-{seed}"
    messages = encode(generate(rows, seed=37))
    produce_messages(KafkaConnection(bootstrap), topic, messages, partitions=PARTITIONS)
    artifacts = Artifacts(work / "out").prepare()
    save_tiny_model(artifacts.keras_model)
    spec = job_spec(bootstrap, artifacts.root, kafka={
        "bootstrapServers": bootstrap, "config": {
            "session.timeout.ms": str(SESSION_TIMEOUT_MS), "heartbeat.interval.ms": "1000"}},
        online={"topic": topic, "consumerGroup": group, "streamTimeoutMs": 8000,
                "batchSize": BATCH, "exportEveryRecords": checkpoint_every,
                "exportEverySeconds": 0})
    spec_path = processes.spec_file(spec, work / "spec.json")
    kill_at = sorted(rng.randint(rows // 20, rows * 9 // 10) for _ in range(kills))
    rebalance_at = sorted(rng.randint(rows // 20, rows * 9 // 10) for _ in range(rebalances))
    logs: list[Path] = []
    resumed: list[dict[int, int]] = []
    done_rebalances: list[dict[str, Any]] = []
    learned_total = 0
    deadline = time.monotonic() + timeout_s
    code: int | None = None
    while code is None:
        logs.append(work / f"learned-{len(logs)}.bin")
        child = processes.start(processes.command(processes.ONLINE_CHILD, spec_path,
                                                  artifacts.root, logs[-1]),
                                work / "online.log")
        while child.poll() is None:
            assert time.monotonic() < deadline, f"{SCENARIO}: no end within {timeout_s} s"
            learned_total = sum(len(read_learned(log)) for log in logs)
            if kill_at and learned_total >= kill_at[0]:
                kill_at.pop(0)
                processes.sigkill(child)
                resumed.append(_checkpoint_positions(artifacts))
                break
            if (rebalance_at and learned_total >= rebalance_at[0]
                    and all("left" in done for done in done_rebalances)):
                rebalance_at.pop(0)
                done_rebalances.append(rebalance_in_background(bootstrap, group, topic,
                                                               learned_total))
            time.sleep(0.01)
        else:
            code = child.returncode
    for rebalance in done_rebalances:
        rebalance["thread"].join(60)
    final = processes.read_json(artifacts.online / "state.json") or {}
    return _figures(rows, kills, rebalances, messages_partitions(rows), fingerprints(
        m.value for m in messages), logs, resumed, done_rebalances, final, code)


def messages_partitions(rows: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Each produced record's partition and offset (round-robin into an empty topic)."""
    index = np.arange(rows)
    return index % PARTITIONS, index // PARTITIONS


def _checkpoint_positions(artifacts: Artifacts) -> dict[int, int]:
    """Where the next run resumes: the durable checkpoint's positions (none: committed offsets)."""
    state = processes.read_json(artifacts.online / "checkpoint" / "state.json")
    return {int(p): int(o) for p, o in (state or {}).get("positions", {}).items()}


def lineage(produced: np.ndarray[Any, Any], where: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
            logs: list[np.ndarray[Any, Any]], resumed: list[dict[int, int]]) -> Counter[int]:
    """How often each produced record's fingerprint is in the final model: per killed run, the
    records below the positions its successor resumed from; all of the last run's."""
    partition_of = dict(zip(produced.tolist(), where[0].tolist(), strict=True))
    offset_of = dict(zip(produced.tolist(), where[1].tolist(), strict=True))
    counts: Counter[int] = Counter()
    for run, learned in enumerate(logs):
        kept = learned["fingerprint"].tolist()
        if run < len(resumed):
            limit = resumed[run]
            kept = [f for f in kept if f in offset_of
                    and offset_of[f] < limit.get(partition_of[f], 0)]
        counts.update(kept)
    return counts


def _figures(rows: int, kills: int, rebalances: int,
             where: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
             produced: np.ndarray[Any, Any], logs: list[Path], resumed: list[dict[int, int]],
             done_rebalances: list[dict[str, Any]], final: dict[str, Any],
             code: int) -> list[Figure]:
    learned = [read_learned(log) for log in logs]
    counts = lineage(produced, where, learned, resumed)
    known = set(produced.tolist())
    twice = sum(1 for f, n in counts.items() if n > 1)
    skipped = len(known - set(counts))
    foreign = len(set(counts) - known)
    relearned = sum(len(run) for run in learned) - sum(counts.values())
    took = [done.get("took") for done in done_rebalances]
    return [
        figure(SCENARIO, "faults", f"{kills} SIGKILLs, {rebalances} rebalances, clean end",
               f"{len(resumed)} kills (resumed at {resumed}); rebalances took partitions "
               f"{took}; last run exit {code}",
               len(resumed) == kills and len(took) == rebalances and all(took) and code == 0),
        figure(SCENARIO, "records in the saved model, each produced record",
               "exactly once: 0 twice, 0 skipped",
               f"{len(counts)} of {rows} distinct; {twice} twice, {skipped} skipped, "
               f"{foreign} unknown; {relearned} learnings by killed runs after their last "
               "checkpoint, learned again by their successors",
               twice == 0 and skipped == 0 and foreign == 0 and len(counts) == rows),
        figure(SCENARIO, "learner's own count after resuming", f"{rows}",
               f"{final.get('recordsOnline')} (exports {final.get('exports')})",
               final.get("recordsOnline") == rows and bool(final.get("final"))),
    ]

