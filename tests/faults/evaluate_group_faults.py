"""Scenario: two evaluators against one on the same records, then one of the two SIGKILLed 5 times.

The topic has one partition (so the two evaluators score offset slices of
it, each with its own ledger) and 1% malformed records of every kind.
1. One evaluator scores it (in this process): the reference figures.
2. Two evaluators score it under another consumer group, as `streamtrain
   run` runs them (`workload.local_group`, each `streamtrain run-mode
   evaluate`): their merged figures must equal the reference's (confusion
   matrix, records, bad records by reason; AUC and loss to 1e-9), and the
   group's committed offsets must be the end offsets.
3. Two evaluators under a third group, in small chunks (`replica_child.py`),
   evaluator 1 SIGKILLed at 5 seeded random points of its share; the local
   group starts it again each time (as the Job controller would). Every
   record must still count once: the reference's figures again.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

from tests.faults import processes
from tests.faults.evaluate_faults import committed_offsets
from tests.faults.figures import Figure, figure
from tests.integration.modes_support import fill_topic, job_spec, save_tiny_model
from workload.artifacts import Artifacts
from workload.kafka.bounds import end_offsets
from workload.kafka.connection import KafkaConnection
from workload.local_group import run_local_group
from workload.modes.evaluate import run_evaluate
from workload.modes.ledger import Ledger
from workload.spec import StreamingTrainingJobSpec
from workload.status import PodReport

SCENARIO = "evaluate: 2 evaluators vs 1, SIGKILLs"
REPLICA_CHILD = Path(__file__).with_name("replica_child.py")
KILLS = 5
SAME = ("confusionMatrix", "records", "badRecords", "badRecordsByReason")


def evaluators_merge_and_survive_kills(bootstrap: str, work: Path, rows: int = 6000,
                                       chunk: int = 150, seed: int = 31337) -> list[Figure]:
    """Run the scenario on a broker that stays up; return its figures."""
    rng = random.Random(seed)
    topic = f"faults-evaluators-{work.name[-12:]}"
    data, _, _ = fill_topic(bootstrap, topic, rows, seed=seed, partitions=1, bad_fraction=0.01)
    artifacts = Artifacts(work / "out").prepare()
    save_tiny_model(artifacts.keras_model, data=data)

    def spec(group: str, evaluators: int) -> StreamingTrainingJobSpec:
        return job_spec(bootstrap, artifacts.root, evaluator={"replicas": evaluators},
                        evaluate={"topic": topic, "consumerGroup": group, "streamTimeoutMs": 0},
                        runPolicy={"backoffLimit": KILLS + 1})

    def figures_of(report: PodReport) -> dict[str, Any]:
        if not report.ok:
            raise RuntimeError(f"an evaluation failed: {report.message}")
        return (processes.read_json(artifacts.results("evaluate")) or {})["figures"]

    reference = figures_of(run_evaluate("one", spec("one", 1), KafkaConnection(bootstrap),
                                        artifacts, progress=False))
    pair = figures_of(run_local_group("evaluate", "pair", spec("pair", 2), bootstrap, artifacts))
    ends = end_offsets(KafkaConnection(bootstrap), topic)
    pair_committed = committed_offsets(bootstrap, "pair", topic)
    report, kills = _killed_run(spec("killed", 2), bootstrap, artifacts, work / "watch", chunk,
                                rows, rng)
    killed = figures_of(report)
    killed_committed = committed_offsets(bootstrap, "killed", topic)
    return _figures(reference, pair, killed, ends, pair_committed, killed_committed, kills)


def _killed_run(spec: StreamingTrainingJobSpec, bootstrap: str, artifacts: Artifacts,
                watch: Path, chunk: int, rows: int,
                rng: random.Random) -> tuple[PodReport, list[tuple[int, int]]]:
    """Two evaluators in chunks of `chunk`; evaluator 1 SIGKILLed at `KILLS` seeded points of its
    share (records its ledger covers); the group's report and (progress, share size) per kill."""
    watch.mkdir(parents=True, exist_ok=True)
    command = processes.command(REPLICA_CHILD, "evaluate", artifacts.root, watch, 0, chunk)
    reports: list[PodReport] = []
    runner = threading.Thread(target=lambda: reports.append(run_local_group(
        "evaluate", "killed", spec, bootstrap, artifacts, command=command)), daemon=True)
    runner.start()
    share = rows - rows // 2
    # Kill points in the first 60 % of its share: a restarted evaluator that runs on past a
    # late kill still leaves room for the next kill inside its share.
    targets = sorted(rng.sample(range(1, int(0.6 * share) // chunk), KILLS))
    ledger, pid_file = artifacts.ledger("killed", 1, 2), watch / "pid-1"
    kills: list[tuple[int, int]] = []
    killed_pid = None
    for target in targets:
        def due(records: int = target * chunk, gone: int | None = killed_pid) -> bool:
            # A process that started after the last kill, past this kill's point.
            return (pid_file.exists() and int(pid_file.read_text()) != gone
                    and _progress(ledger) >= max(records, kills[-1][0] + 1 if kills else 0))

        processes.wait_for_thread(due, runner, 300,
                                  f"evaluator 1 to cover {target * chunk} records")
        # Inside the next chunk, or between save and commit (briefly: a restarted evaluator
        # scores a chunk in milliseconds, and a late kill pushes the next one towards the end).
        time.sleep(rng.uniform(0.0, 0.01))
        killed_pid = int(pid_file.read_text())
        processes.kill_pid(killed_pid)
        kills.append((_progress(ledger), share))
    runner.join(600)
    if not reports:
        raise TimeoutError("the killed evaluation did not finish within 10 minutes")
    return reports[0], kills


def _progress(ledger: Path) -> int:
    """Records of its share evaluator 1's ledger covers (its share starts at the middle)."""
    found = Ledger.load(ledger)
    return found.tally.records + found.tally.bad_records if found else 0


def _figures(reference: dict[str, Any], pair: dict[str, Any], killed: dict[str, Any],
             ends: dict[int, int], pair_committed: dict[int, int],
             killed_committed: dict[int, int], kills: list[tuple[int, int]]) -> list[Figure]:
    def equal(figures: dict[str, Any]) -> tuple[bool, str]:
        gaps = {key: abs(figures[key] - reference[key]) for key in ("auc", "loss")}
        same = all(figures[key] == reference[key] for key in SAME)
        return same and max(gaps.values()) <= 1e-9, (
            f"{figures['records']} records, {figures['badRecordsByReason']} bad, "
            f"confusion {'equal' if figures['confusionMatrix'] == reference['confusionMatrix'] else 'differs'}, "
            f"AUC {figures['auc']:.9f} (gap {gaps['auc']:.1e}), loss gap {gaps['loss']:.1e}")

    pair_ok, pair_text = equal(pair)
    killed_ok, killed_text = equal(killed)
    records = sum(ends.values())
    mid_share = [at for at, share in kills if at < share]
    return [
        figure(SCENARIO, "2 evaluators (offset slices of 1 partition) vs 1 evaluator",
               "same counts and bad records by reason, AUC and loss within 1e-9",
               f"{pair_text} (reference AUC {reference['auc']:.9f})", pair_ok),
        figure(SCENARIO, "2 evaluators: committed offsets", f"= end offsets {ends}",
               pair_committed, pair_committed == ends),
        figure(SCENARIO, "evaluator 1 SIGKILLed mid-share", f"{KILLS} times",
               f"{len(mid_share)} (at {', '.join(str(at) for at, _ in kills)} of its "
               f"{kills[0][1] if kills else '?'} records)", len(mid_share) == KILLS),
        figure(SCENARIO, "after the kills, every record counted once",
               f"{records} records, the reference's figures", killed_text,
               killed_ok and killed["records"] + killed["badRecords"] == records),
        figure(SCENARIO, "after the kills: committed offsets", f"= end offsets {ends}",
               killed_committed, killed_committed == ends),
    ]
