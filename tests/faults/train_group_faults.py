"""Scenario: a worker of a two-worker training group SIGKILLed mid-epoch; the group resumes.

The group runs as it does locally (`workload.local_group`, the stand-in for
an Indexed Job: a failed process is started again with its index, a worker
that lost its peer exits with `PEER_LOST_EXIT` and is started again without
being counted), each worker being `replica_child.py`, which logs every batch
it is about to train (epoch, a fingerprint of each record's features). The
topic has one partition, so the workers read offset slices of it.

1. Uninterrupted (seeded): in every epoch each record of the topic's
   training ranges is trained exactly once across the two workers, as the
   logs show; the validation slice (`train.validationFraction`, the tail of
   the partition) is never trained (it would show as foreign records) and is
   validated after every epoch, all of it.
2. The same, with worker 1 SIGKILLed inside an epoch at a seeded random
   step: the chief checkpoints after every step (`checkpointEverySeconds:
   0`), worker 0 notices the loss and exits, both start again and resume at
   the chief's checkpoint. Every record of every epoch is trained, once,
   except those of the step that was cut short (trained again: at most one
   batch). Held-out accuracy is within the run-to-run spread of the
   uninterrupted run's.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tests.faults import processes
from tests.faults.figures import Figure, figure
from tests.faults.replica_child import fingerprints, read_learned
from tests.integration.modes_support import fill_topic, job_spec, predict
from workload.artifacts import Artifacts
from workload.datagen.synthetic import generate
from workload.kafka.bounds import partition_bounds, record_count
from workload.kafka.connection import KafkaConnection
from workload.local_group import run_local_group
from workload.modes.train_data import read_all, split_validation
from workload.modes.train_progress import TrainProgress
from workload.spec import StreamingTrainingJobSpec
from workload.status import PodReport

SCENARIO = "train: 2 workers, one SIGKILLed mid-epoch"
REPLICA_CHILD = Path(__file__).with_name("replica_child.py")
BATCH = 64
RUN_TO_RUN_SPREAD = 0.01
"""Held-out accuracy difference allowed between the resumed and the uninterrupted run. Both
are seeded, but the restarted workers draw new dropout masks; the standard error of accuracy
on the 5,000-record holdout alone is about 0.006."""
VALIDATION_FRACTION = 0.1
"""The default: the last 300 of the 3,000 records validate."""


def group_worker_killed_mid_epoch(bootstrap: str, work: Path, rows: int = 3000,
                                  epochs: int = 2, seed: int = 4242) -> list[Figure]:
    """Run the scenario on a broker that stays up; return its figures."""
    rng = random.Random(seed)
    topic = f"faults-group-{work.name[-12:]}"
    fill_topic(bootstrap, topic, rows, seed=seed, partitions=1)
    connection = KafkaConnection(bootstrap)
    spec = job_spec(bootstrap, work, train={
        "topic": topic, "epochs": epochs, "batchSize": BATCH, "shuffleBuffer": 256,
        "checkpointEverySeconds": 0, "validationFraction": VALIDATION_FRACTION},
        trainer={"replicas": 2}, runPolicy={"backoffLimit": 3})
    expected, held_out = _record_prints(connection, spec)
    calm, calm_watch = _folders(work, "calm")
    calm_report = _run(spec, bootstrap, calm, calm_watch, seed)
    killed, killed_watch = _folders(work, "killed")
    per_worker_steps = -(-rows // BATCH)
    kill = {"epoch": rng.randint(1, epochs - 1),
            "records": rng.randint(per_worker_steps // 5, per_worker_steps * 3 // 5) * BATCH // 2}
    report, kill = _run_and_kill_worker(spec, bootstrap, killed, killed_watch, seed, kill)
    holdout = generate(5000, seed=seed + 1)
    accuracy = {name: _accuracy(artifacts, holdout.features, holdout.labels) if ok else float("nan")
                for name, artifacts, ok in (("calm", calm, calm_report.ok),
                                            ("killed", killed, report.ok))}
    return _figures(expected, epochs, _learned(calm_watch), _learned(killed_watch), calm_report,
                    report, processes.read_json(killed.results("train")) or {}, kill, accuracy,
                    (held_out, processes.read_json(calm.results("train")) or {}))


def _folders(work: Path, name: str) -> tuple[Artifacts, Path]:
    watch = work / f"{name}-watch"
    watch.mkdir(parents=True, exist_ok=True)
    return Artifacts(work / name).prepare(), watch


def _record_prints(connection: KafkaConnection, spec: StreamingTrainingJobSpec
                   ) -> tuple[npt.NDArray[np.uint64], int]:
    """Fingerprints of every record of the topic's training ranges, decoded as training decodes
    them, and the number of records of its validation slice."""
    assert spec.train is not None
    topic = spec.train.topic
    training, validation = split_validation(partition_bounds(connection, topic),
                                            spec.train.validation_fraction)
    with TrainProgress(False) as display:
        summary = read_all(connection, topic, training, spec.data, True, display)
    features = np.concatenate([part.features for part in summary.parts])
    return fingerprints(features), record_count(validation)


def _command(artifacts: Artifacts, watch: Path, seed: int) -> list[str]:
    return processes.command(REPLICA_CHILD, "train", artifacts.root, watch, seed)


def _run(spec: StreamingTrainingJobSpec, bootstrap: str, artifacts: Artifacts, watch: Path,
         seed: int) -> PodReport:
    return run_local_group("train", "group", spec, bootstrap, artifacts,
                           command=_command(artifacts, watch, seed))


def _run_and_kill_worker(spec: StreamingTrainingJobSpec, bootstrap: str, artifacts: Artifacts,
                         watch: Path, seed: int, kill: dict[str, int]
                         ) -> tuple[PodReport, dict[str, Any]]:
    """Run the group; SIGKILL worker 1 once its log shows `kill["records"]` records of epoch
    `kill["epoch"]`; the group's report and what was killed when."""
    reports: list[PodReport] = []
    runner = threading.Thread(target=lambda: reports.append(
        _run(spec, bootstrap, artifacts, watch, seed)), daemon=True)
    runner.start()
    log, pid_file = watch / "learned-1", watch / "pid-1"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and runner.is_alive():
        learned = read_learned(log)
        done = int(np.count_nonzero(learned["epoch"] == kill["epoch"]))
        if done >= kill["records"]:
            pid = int(pid_file.read_text())
            processes.kill_pid(pid)
            happened = {**kill, "logged": done, "pid": pid, "at": time.monotonic()}
            break
        time.sleep(0.01)
    else:
        happened = {**kill, "logged": None}
    runner.join(600)
    if not reports:
        raise TimeoutError("the killed group did not finish within 10 minutes")
    return reports[0], happened


def _learned(watch: Path) -> npt.NDArray[np.void]:
    return np.concatenate([read_learned(watch / "learned-0"), read_learned(watch / "learned-1")])


def _per_epoch(learned: npt.NDArray[np.void], expected: npt.NDArray[np.uint64],
               epochs: int) -> list[dict[str, int]]:
    """Per epoch: records never learned, learned more than once (extra learnings), foreign."""
    wanted = set(expected.tolist())
    found = []
    for epoch in range(epochs):
        counts = Counter(learned["fingerprint"][learned["epoch"] == epoch].tolist())
        found.append({"missing": len(wanted - set(counts)),
                      "again": sum(count - 1 for count in counts.values() if count > 1),
                      "foreign": len(set(counts) - wanted)})
    return found


def _accuracy(artifacts: Artifacts, features: npt.NDArray[np.float32],
              labels: npt.NDArray[np.float32]) -> float:
    scores = predict(artifacts.keras_model, features)
    return float(np.mean((scores > 0.5) == (labels > 0.5)))


def _figures(expected: npt.NDArray[np.uint64], epochs: int, calm: npt.NDArray[np.void],
             killed: npt.NDArray[np.void], calm_report: PodReport, report: PodReport,
             results: dict[str, Any], kill: dict[str, Any], accuracy: dict[str, float],
             validation: tuple[int, dict[str, Any]]) -> list[Figure]:
    records = len(expected)
    calm_epochs = _per_epoch(calm, expected, epochs)
    killed_epochs = _per_epoch(killed, expected, epochs)
    k = kill["epoch"]
    exact = all(counts == {"missing": 0, "again": 0, "foreign": 0} for counts in calm_epochs)
    others = all(counts == {"missing": 0, "again": 0, "foreign": 0}
                 for epoch, counts in enumerate(killed_epochs) if epoch != k)
    cut = killed_epochs[k]
    resumed = (results.get("resumedAtEpoch"), results.get("resumedAtBatch"))
    gap = abs(accuracy["calm"] - accuracy["killed"])
    held_out, calm_results = validation
    validated = calm_report.metrics.records_validated if calm_report.ok else None
    val_losses = calm_results.get("history", {}).get("val_loss", [])
    return [
        figure(SCENARIO, "uninterrupted: each epoch, each record once across the workers",
               f"{epochs} epochs x {records} records, 0 missing, 0 twice, 0 foreign",
               "; ".join(f"epoch {e + 1}: {c['missing']} missing, {c['again']} twice, "
                         f"{c['foreign']} foreign" for e, c in enumerate(calm_epochs)),
               calm_report.ok and exact),
        figure(SCENARIO, "uninterrupted: the validation slice validated after each epoch",
               f"{held_out} records, {epochs} validation losses",
               f"{validated} records, {len(val_losses)} validation losses",
               held_out > 0 and validated == held_out and len(val_losses) == epochs),
        figure(SCENARIO, "worker 1 SIGKILLed inside an epoch", f"in epoch {k + 1}",
               f"after {kill['logged']} of its records of epoch {k + 1}",
               kill["logged"] is not None),
        figure(SCENARIO, "group resumed from the chief's checkpoint",
               f"inside epoch {k + 1}, then to the end",
               f"epoch {resumed[0] + 1 if resumed[0] is not None else '?'} after step "
               f"{resumed[1]}; {report.message or 'succeeded'}",
               report.ok and resumed[0] == k and bool(resumed[1])),
        figure(SCENARIO, "records trained again (the step cut short)",
               f"0 lost; <= {BATCH} again in epoch {k + 1}, none in the others",
               f"{cut['missing']} lost, {cut['again']} again, {cut['foreign']} foreign",
               report.ok and others and cut["missing"] == 0 and cut["foreign"] == 0
               and cut["again"] <= BATCH),
        figure(SCENARIO, "held-out accuracy, resumed vs uninterrupted",
               f"|difference| <= {RUN_TO_RUN_SPREAD}",
               f"{accuracy['killed']:.4f} vs {accuracy['calm']:.4f}", gap <= RUN_TO_RUN_SPREAD),
    ]
