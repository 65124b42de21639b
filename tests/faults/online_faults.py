"""Scenario: a consumer-group rebalance and a broker restart mid-stream, on a long run.

The learner (a child process) consumes `rows`
records of a two-partition topic, exporting every `export_every` records.
At a quarter, a second member joins its consumer group (taking partitions
away from it), reads without committing and leaves; once it has left and
half the records are learned, the broker is stopped and started again on
the same port and data. The last quarter of the records is produced only
after the broker serves again, so learning after the restart is certain
however fast the learner is. The scenario samples each export's
`state.json` (records learned, resident memory), stops the learner with
SIGTERM once its consumer group has committed the topic's end and it has
learned nothing new for a second (records are committed a moment before they
are learned), and measures: the run went on after both and ended cleanly,
exports kept their cadence in records, and resident memory stayed flat over
the second half of the run.

Per record (`learned_records`): every record value is unique (synthetic
float features), and the learner logs a fingerprint of each record it learns
with the time of its batch (`online_child.LearnedLog`). The scenario notes
the time of every event that may start a new group generation: the member's
join (consumer created), its assignment, its leave (start and end of its
close), and the broker restart's start and end; and it reads the generations
the group coordinator recorded, which also show the learner's own rejoin,
seconds after the broker serves again. Two learnings of one record are
"within one generation" when no such boundary lies after the first and before
the second. Measured: every produced record learned at least once (none
lost), none learned twice within one generation, and none learned again
across a generation change either (goal 0 for both): the learner resumes
each partition where it left off, not where the last commit says.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from localparts import kafka as local_kafka
from tests.faults import processes
from tests.faults.evaluate_faults import committed_offsets
from tests.faults.figures import Figure, figure
from tests.faults.learned_records import LearnedRecords, group_generations, learned_records
from tests.integration.modes_support import job_spec, save_tiny_model
from tests.integration.online_child import fingerprints, read_learned
from workload.artifacts import Artifacts
from workload.datagen.records import encode
from workload.datagen.synthetic import generate
from workload.kafka.bounds import end_offsets
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import produce_messages

SCENARIO = "online: rebalance + broker restart, long run"
MEMORY_GROWTH_LIMIT = 40 * 2**20
"""Resident memory the second half of the run may add (allocator noise, not a leak)."""
BATCH = 256


def online_broker_restart(work: Path, rows: int = 200_000, export_every: int = 20_000,
                          timeout_s: float = 240) -> list[Figure]:
    """Run the scenario on a broker of its own (restarted mid-stream); return its figures."""
    broker = local_kafka.start(work / "kafka")
    try:
        return _scenario(broker, work, rows, export_every, timeout_s)
    finally:
        broker.stop()


def _scenario(broker: local_kafka.KafkaBroker, work: Path, rows: int, export_every: int,
              timeout_s: float) -> list[Figure]:
    bootstrap = broker.bootstrap_servers
    topic = group = "faults-online"
    connection = KafkaConnection(bootstrap)
    data = generate(rows, seed=31)
    messages = encode(data)
    held_back = messages[rows * 3 // 4:]
    produce_messages(connection, topic, messages[:rows * 3 // 4], partitions=2)
    artifacts = Artifacts(work / "out").prepare()
    save_tiny_model(artifacts.keras_model, data=data)
    spec = job_spec(bootstrap, artifacts.root, online={
        "topic": topic, "consumerGroup": group, "streamTimeoutMs": -1, "batchSize": BATCH,
        "exportEveryRecords": export_every, "exportEverySeconds": 0})
    learned_log = work / "learned.bin"
    command = processes.command(processes.ONLINE_CHILD,
                                processes.spec_file(spec, work / "spec.json"), artifacts.root,
                                learned_log)
    ends: dict[int, int] = {}
    child = processes.start(command, work / "online.log")
    exports: dict[int, dict[str, Any]] = {}
    restart: dict[str, Any] = {}
    rebalance: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    last_commit_check = 0.0
    log_size = -1
    try:
        while time.monotonic() < deadline and child.poll() is None:
            state = processes.read_json(artifacts.online / "state.json")
            if state is not None:
                exports.setdefault(int(state["exports"]), state)
                if not rebalance and state["recordsOnline"] >= rows // 4:
                    rebalance = rebalance_in_background(bootstrap, group, topic,
                                                         state["recordsOnline"])
                if not restart and "seconds" in rebalance and state["recordsOnline"] >= rows // 2:
                    restart = _restart_in_background(broker, state["recordsOnline"])
            if "downSeconds" in restart and not ends:
                produce_messages(connection, topic, held_back, partitions=2)
                ends = end_offsets(connection, topic)
            near_end = bool(exports) and exports[max(exports)]["recordsOnline"] > rows - export_every
            if near_end and ends and (
                    time.monotonic() - last_commit_check > 1.0):
                last_commit_check = time.monotonic()
                # Stop once the group has committed the end (a batch is committed after it is
                # learned) and the learner has learned nothing new for a check interval.
                size = _size(learned_log)
                grown, log_size = size != log_size, size
                if _caught_up(bootstrap, group, topic, ends) and not grown:
                    break
            time.sleep(0.01)
        child.send_signal(signal.SIGTERM)
        code = child.wait(60)
    except subprocess.TimeoutExpired:
        code = processes.sigkill(child)
    finally:
        for background in (rebalance, restart):  # let them end before the broker stops
            if "thread" in background:
                background["thread"].join(120)
    final = processes.read_json(artifacts.online / "state.json") or {}
    generations = group_generations(bootstrap, group)
    boundaries = _boundaries(rebalance, restart) + [
        (when, f"group rejoin (generation {generation})") for generation, when in generations]
    records = learned_records(fingerprints(m.value for m in messages),
                              read_learned(learned_log), boundaries)
    return _figures(rows, export_every, exports, final, rebalance, restart, code, records,
                    len(generations))


def rebalance_in_background(bootstrap: str, group: str, topic: str, at: int) -> dict[str, Any]:
    """A second member joins the learner's group (a rebalance hands it partitions), reads
    without committing, and leaves (a second rebalance hands them back); in a thread."""
    rebalance: dict[str, Any] = {"at": at}

    def run() -> None:
        started = rebalance["joins"] = time.monotonic()
        member = KafkaConsumer(topic, group_id=group, bootstrap_servers=bootstrap,
                               enable_auto_commit=False, max_poll_records=1,
                               fetch_max_bytes=1 << 16, max_partition_fetch_bytes=1 << 16)
        try:
            while not member.assignment() and time.monotonic() - started < 30:
                member.poll(timeout_ms=200)
            rebalance["assigned"] = time.monotonic()
            rebalance["took"] = sorted(tp.partition for tp in member.assignment())
            member.poll(timeout_ms=1000)
        finally:
            rebalance["leaves"] = time.monotonic()
            member.close(autocommit=False)
            rebalance["left"] = time.monotonic()
            rebalance["seconds"] = rebalance["left"] - started

    rebalance["thread"] = threading.Thread(target=run, name="rebalance", daemon=True)
    rebalance["thread"].start()
    return rebalance


def _restart_in_background(broker: local_kafka.KafkaBroker, at: int) -> dict[str, Any]:
    """Restart the broker in a thread (the exports go on being sampled meanwhile); the dict
    holds the thread, and `downSeconds` once the broker serves again."""
    restart: dict[str, Any] = {"at": at}

    def run() -> None:
        started = restart["stops"] = time.monotonic()
        local_kafka.restart(broker)
        restart["serves"] = time.monotonic()
        restart["downSeconds"] = restart["serves"] - started

    restart["thread"] = threading.Thread(target=run, name="broker-restart", daemon=True)
    restart["thread"].start()
    return restart


def _size(path: Path) -> int:
    """A file's size in bytes (0 while it does not exist)."""
    return path.stat().st_size if path.exists() else 0


def _caught_up(bootstrap: str, group: str, topic: str, ends: dict[int, int]) -> bool:
    """Whether the group has committed the topic's end (False while the broker recovers)."""
    try:
        return committed_offsets(bootstrap, group, topic) == ends
    except KafkaError:
        return False


def _boundaries(rebalance: dict[str, Any], restart: dict[str, Any]) -> list[tuple[float, str]]:
    """`(time.monotonic(), cause)` of every event of the scenario that may start a group
    generation, in order."""
    events = [(rebalance.get(moment), "rebalance") for moment in ("joins", "assigned", "leaves",
                                                                  "left")]
    events += [(restart.get(moment), "broker restart") for moment in ("stops", "serves")]
    return sorted((when, cause) for when, cause in events if when is not None)


def _figures(rows: int, export_every: int, exports: dict[int, dict[str, Any]],
             final: dict[str, Any], rebalance: dict[str, Any], restart: dict[str, Any],
             code: int, records: LearnedRecords, generations: int) -> list[Figure]:
    learned = int(final.get("recordsOnline", 0))
    periodic = [exports[n] for n in sorted(exports) if not exports[n].get("final")]
    steps = [(b["recordsOnline"] - a["recordsOnline"]) // (b["exports"] - a["exports"])
             for a, b in itertools.pairwise(periodic)]
    after_restart = [s for s in periodic if restart and s["recordsOnline"] > restart["at"]]
    memory = [(s["recordsOnline"], s["residentMemoryBytes"]) for s in periodic
              if s.get("residentMemoryBytes")]
    if final.get("residentMemoryBytes"):
        memory.append((learned, final["residentMemoryBytes"]))
    half = [m for r, m in memory if r >= learned // 2]
    growth = max(half) - half[0] if len(half) >= 2 else None
    mib = ", ".join(f"{r // 1000}k: {m / 2**20:.0f}" for r, m in memory)
    after_rebalance = [s for s in periodic if rebalance and s["recordsOnline"] > rebalance["at"]]
    again = ", ".join(f"{count} after the {cause}"
                      for cause, count in sorted(records.again_across_generations.items()))
    return [
        figure(SCENARIO, "consumer-group rebalance mid-stream",
               "a member joins, takes partitions, leaves; learning goes on",
               f"at {rebalance.get('at')} records the member took partitions "
               f"{rebalance.get('took')} for {rebalance.get('seconds', 0):.1f} s; "
               f"{len(after_rebalance)} exports after it",
               bool(rebalance.get("took")) and bool(after_rebalance)),
        figure(SCENARIO, "broker restart mid-stream",
               "1; learning goes on after it, clean end",
               f"at {restart.get('at')} records (down {restart.get('downSeconds', 0):.1f} s); "
               f"{len(after_restart)} exports after it; exit {code}",
               bool(restart) and bool(after_restart) and code == 0 and bool(final.get("final"))),
        figure(SCENARIO, "records learned", f"each of the {rows} produced, at least once (none lost)",
               f"{records.learned_distinct} of {records.produced_distinct} distinct produced, "
               f"{records.missing} missing, {records.foreign} unknown; {records.learnings} "
               f"learnings (learner's count {learned})",
               records.produced_distinct == rows and records.missing == 0
               and records.foreign == 0 and records.learnings == learned),
        figure(SCENARIO, "records trained twice, within a group generation or across",
               "0 and 0",
               f"{records.twice_within_generation} within, over {generations} generations; "
               f"across a generation change: {again or 'none'}",
               records.learnings > 0 and records.twice_within_generation == 0
               and not records.again_across_generations),
        figure(SCENARIO, "export cadence (records between exports)",
               f"{export_every} to {export_every + BATCH}",
               f"{min(steps)} to {max(steps)} over {len(steps)} intervals" if steps else "none",
               bool(steps) and export_every <= min(steps) and max(steps) <= export_every + BATCH),
        figure(SCENARIO, "resident memory, second half of the run (peak - start)",
               f"< {MEMORY_GROWTH_LIMIT // 2**20} MiB",
               f"{(growth or 0) / 2**20:+.1f} MiB (MiB at records: {mib})",
               growth is not None and growth < MEMORY_GROWTH_LIMIT),
    ]
