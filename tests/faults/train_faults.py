"""Scenario: the trainer SIGKILLed in the middle of an epoch, then restarted.

The job checkpoints after every batch (`train.checkpointEverySeconds: 0`;
`workload.modes.checkpoint`): weights, optimizer state, epoch and batch, and
the offsets covered. The killed trainer runs in a child process that appends
each batch it trains to a trace file, so the batches trained before the
SIGKILL are known from outside; the restarted trainer says where it resumed.
Batches replayed = trained before the kill - position resumed at (goal: at
most one, the batch whose checkpoint was being written).

Because an epoch's order is fixed (deterministic replay, per-epoch seeded
shuffle) and the checkpoint holds the optimizer state, the resumed run should
end with the model an uninterrupted run with the same seed ends with: the
scenario compares their held-out accuracy.

The uninterrupted run is in the calling process (tensorflow-io included),
so `bootstrap` must be a broker that stays up while the process lives.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tests.faults import processes
from tests.faults.figures import Figure, figure
from tests.integration.modes_support import fill_topic, job_spec, predict
from workload.artifacts import Artifacts
from workload.datagen.synthetic import generate
from workload.kafka.connection import KafkaConnection
from workload.modes.train import run_train
from workload.spec import StreamingTrainingJobSpec

SCENARIO = "train: SIGKILL mid-epoch, resume"
ACCURACY_NOISE = 0.005
"""Held-out accuracy difference allowed between the resumed and the uninterrupted run: they
train the same batches in the same order from the same state, so only float rounding (thread
scheduling) separates them; two unseeded runs differ by up to 0.03 on these sizes."""
BATCH = 64


def trainer_killed_mid_epoch(bootstrap: str, work: Path, rows: int = 20_000, epochs: int = 4,
                             seed: int = 77) -> list[Figure]:
    """Run the scenario on a broker that stays up; return its figures."""
    rng = random.Random(seed)
    topic = f"faults-train-{work.name[-12:]}"
    fill_topic(bootstrap, topic, rows, seed=seed, partitions=2)
    spec = _spec(bootstrap, work, topic, epochs)
    calm = Artifacts(work / "calm").prepare()
    keras.utils.set_random_seed(seed)
    calm_report = run_train("calm", spec, KafkaConnection(bootstrap), calm, progress=False)
    if not calm_report.ok:
        raise RuntimeError(f"the uninterrupted training failed: {calm_report.message}")
    calm_results = processes.read_json(calm.results("train")) or {}

    killed = Artifacts(work / "killed").prepare()
    trace = work / "batches.trace"
    command = processes.command(processes.TRAIN_CHILD,
                                processes.spec_file(spec, work / "spec.json"), killed.root,
                                seed, trace)
    per_epoch = -(-rows // BATCH)
    kill = _kill_mid_epoch(command, trace, rng.randint(1, epochs - 1),
                           rng.randint(per_epoch // 5, per_epoch * 4 // 5))
    trace.unlink()
    resumed = processes.run_to_end(command, timeout_s=180)
    results = processes.read_json(killed.results("train")) or {}
    holdout = generate(5000, seed=seed + 1)
    accuracy = {name: _accuracy(artifacts, holdout.features, holdout.labels)
                for name, artifacts in (("calm", calm), ("resumed", killed))}
    return _figures(kill, results, calm_results, resumed.returncode, accuracy, per_epoch)


def _spec(bootstrap: str, work: Path, topic: str, epochs: int) -> StreamingTrainingJobSpec:
    return job_spec(bootstrap, work,
                    train={"topic": topic, "epochs": epochs, "batchSize": BATCH,
                           "shuffleBuffer": 256, "checkpointEverySeconds": 0})


def _kill_mid_epoch(command: list[str], trace: Path, epoch: int,
                    batch: int) -> dict[str, Any]:
    """Start training; SIGKILL it as soon as its trace shows `batch` batches of `epoch` (0-based)
    trained; what it trained by then is the trace's last line."""
    child = processes.start(command)
    processes.wait_for(lambda: (_last_traced(trace) or (0, 0)) >= (epoch, batch), child, 120,
                       f"batch {batch} of epoch {epoch + 1} trained")
    code = processes.sigkill(child)
    return {"afterEpochs": epoch, "exitCode": code, "trained": _last_traced(trace)}


def _last_traced(trace: Path) -> tuple[int, int] | None:
    """(epoch, batches trained in it) of the trace's last whole line, or None when none."""
    try:
        lines = trace.read_text().splitlines()
    except FileNotFoundError:
        return None
    whole = [line.split() for line in lines if len(line.split()) == 2]
    return (int(whole[-1][0]), int(whole[-1][1]) + 1) if whole else None


def _accuracy(artifacts: Artifacts, features: np.ndarray[Any, Any],
              labels: np.ndarray[Any, Any]) -> float:
    scores = predict(artifacts.keras_model, features)
    return float(np.mean((scores > 0.5) == (labels > 0.5)))


def _figures(kill: dict[str, Any], results: dict[str, Any], calm: dict[str, Any],
             returncode: int, accuracy: dict[str, float], per_epoch: int) -> list[Figure]:
    k = kill["afterEpochs"]
    trained = kill["trained"]
    mid_epoch = (kill["exitCode"] == -9 and trained is not None and trained[0] == k
                 and 0 < trained[1] < per_epoch)
    resumed_at = (results.get("resumedAtEpoch"), results.get("resumedAtBatch"))
    replayed = None
    if trained is not None and resumed_at[0] is not None and resumed_at[1] is not None:
        replayed = ((trained[0] - resumed_at[0]) * per_epoch) + trained[1] - resumed_at[1]
    gap = abs(accuracy["calm"] - accuracy["resumed"])
    return [
        figure(SCENARIO, "SIGKILL inside an epoch", f"after epoch {k}, before epoch {k + 1} ends",
               f"in epoch {k + 1} after batch {trained[1] if trained else '?'} of {per_epoch} "
               f"(exit {kill['exitCode']})", mid_epoch),
        figure(SCENARIO, "resumed from checkpoint", "inside the killed epoch, then to the end",
               f"epoch {resumed_at[0] + 1 if resumed_at[0] is not None else '?'} after batch "
               f"{resumed_at[1]}, exit {returncode}",
               returncode == 0 and resumed_at[0] == k and bool(resumed_at[1])),
        figure(SCENARIO, "batches replayed", "<= 1 (checkpoint after every batch)",
               f"{replayed} (of {per_epoch} per epoch)",
               mid_epoch and replayed is not None and 0 <= replayed <= 1),
        figure(SCENARIO, "offsets trained after resume", str(calm.get("offsets")),
               results.get("offsets"), results.get("offsets") == calm.get("offsets")),
        figure(SCENARIO, "held-out accuracy, resumed vs uninterrupted (same seed)",
               f"|difference| <= {ACCURACY_NOISE}",
               f"{accuracy['resumed']:.4f} vs {accuracy['calm']:.4f}", gap <= ACCURACY_NOISE),
    ]
