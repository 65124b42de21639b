"""Training checkpoints, inside and between epochs, with the Kafka offsets they cover.

What makes a resume exact: an epoch's records come in the same order on
every run (the replay reader is deterministic and the shuffle is seeded by
the epoch number), so a checkpoint only has to say how many batches of the
current epoch are done; a restart skips that many batches and goes on.

A checkpoint is the model's weights and the optimizer's state (one `.npz`:
about 1 MB and a few milliseconds for the default model) plus `state.json`,
which names it and records the offsets. The weights are written under a
temporary name and renamed, THEN `state.json` is replaced atomically: a
trainer killed at any moment finds either the previous pair or the new one.

When: at each epoch's end, every `train.checkpointEverySeconds` inside an
epoch (0 = after every batch), and at the batch where a stop was requested
(SIGTERM). A trainer killed without warning replays the batches it trained
since its last checkpoint (with 0, at most the one whose checkpoint was
being written); one stopped with SIGTERM replays none. A resumed epoch's
loss and accuracy in the history cover the batches trained after the resume.

Early stopping lives here too, so it survives a restart: after each epoch
with a validation loss, the state records the best epoch so far (and, to
restore them at the end, its weights in `best-<epoch>.npz`, written before
the state that names it), or marks training stopped once the best epoch is
`train.earlyStopping.patience` epochs old.

A checkpoint is resumed from only when it carries this job's uid and spec
digest (`workload.identity`); any other found in the folder is ignored with
a warning and training starts at epoch 1. On resume the model is rebuilt
from the spec and the checkpoint loaded into it; a checkpoint that still
does not fit is an error, never a silent fresh start.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from workload.artifacts import write_json_atomic
from workload.identity import RunIdentity
from workload.spec import EarlyStoppingSpec

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
"""Name of the checkpoint's index inside `Artifacts.checkpoints`."""


class CheckpointMismatch(ValueError):
    """The checkpoint's weights do not fit the model the spec describes."""


@dataclass
class TrainState:
    """Where training stands: epochs and batches done, the data they covered, their figures."""

    topic: str
    offsets: dict[int, tuple[int, int]]
    epochs_done: int = 0
    batches_done: int = 0
    """Batches of epoch `epochs_done + 1` already trained."""
    history: dict[str, list[float]] = field(default_factory=dict)
    weights_file: str | None = None
    job_uid: str = ""
    """The job that wrote it (see `workload.identity`); empty in old checkpoints."""
    spec_digest: str = ""
    """Digest of the spec's data, train and model settings it was written with."""
    best_epoch: int = 0
    """The epoch (from 1) with the lowest validation loss so far; 0 = none yet."""
    best_loss: float | None = None
    """That epoch's validation loss."""
    best_weights_file: str | None = None
    """That epoch's weights, when `train.earlyStopping.restoreBestWeights`."""
    stopped_early: bool = False
    """Training ended before `train.epochs`: the validation loss stopped improving."""
    workers: int = 1
    """Workers of the group that trained it: `batches_done` counts that group's steps."""

    def to_json(self) -> dict[str, Any]:
        """The state as JSON (partitions as string keys)."""
        return {
            "topic": self.topic,
            "offsets": {str(p): list(span) for p, span in sorted(self.offsets.items())},
            "epochsDone": self.epochs_done,
            "batchesDone": self.batches_done,
            "history": self.history,
            "weightsFile": self.weights_file,
            "jobUid": self.job_uid,
            "specDigest": self.spec_digest,
            "bestEpoch": self.best_epoch,
            "bestLoss": self.best_loss,
            "bestWeightsFile": self.best_weights_file,
            "stoppedEarly": self.stopped_early,
            "workers": self.workers,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> TrainState:
        """Parse `to_json`'s output."""
        return cls(
            topic=str(document["topic"]),
            offsets={int(p): (int(s), int(e)) for p, (s, e) in document["offsets"].items()},
            epochs_done=int(document["epochsDone"]),
            batches_done=int(document.get("batchesDone", 0)),
            history={k: [float(v) for v in vs] for k, vs in document["history"].items()},
            weights_file=document.get("weightsFile"),
            job_uid=str(document.get("jobUid") or ""),
            spec_digest=str(document.get("specDigest") or ""),
            best_epoch=int(document.get("bestEpoch") or 0),
            best_loss=document.get("bestLoss"),
            best_weights_file=document.get("bestWeightsFile"),
            stopped_early=bool(document.get("stoppedEarly")),
            workers=int(document.get("workers", 1)),
        )


def load_state(folder: Path) -> TrainState | None:
    """The last checkpoint's state in `folder`, or `None` when there is none."""
    path = folder / STATE_FILE
    if not path.exists():
        return None
    return TrainState.from_json(json.loads(path.read_text()))


def load_own_state(folder: Path, identity: RunIdentity,
                   workers: int = 1) -> tuple[TrainState | None, str | None]:
    """This job's last checkpoint state in `folder`, and why one found there was ignored.

    A checkpoint taken inside an epoch by a group of another size resumes at the start of that
    epoch: its batch count does not say which records another group has trained."""
    state = load_state(folder)
    if state is None:
        return None, None
    why = identity.mismatch(state.job_uid, state.spec_digest)
    if why is None:
        if state.workers != workers and state.batches_done:
            log.warning("the checkpoint in %s was taken by %d workers in epoch %d; with %d, "
                        "that epoch starts again", folder, state.workers,
                        state.epochs_done + 1, workers)
            state.batches_done = 0
        state.workers = workers
        return state, None
    message = f"ignored the checkpoint in {folder}: {why}; training starts at epoch 1"
    log.warning(message)
    return None, message


def checkpoint_variables(model: keras.Model) -> dict[str, Any]:
    """Every variable a resume needs, by a stable name: weights, then optimizer state (named
    without the optimizer's own name, which Keras numbers per process: `adam_2/...`)."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return {**{f"model:{v.path}": v for v in model.weights},
            **{f"optimizer:{v.path.split('/', 1)[-1]}": v for v in model.optimizer.variables}}


def restore_checkpoint(folder: Path, state: TrainState, model: keras.Model) -> bool:
    """Load the checkpoint `state` names into `model`; False when the state names none."""
    if state.weights_file is None:
        return False
    load_variables(folder / state.weights_file, model, folder)
    return True


def load_variables(path: Path, model: keras.Model, folder: Path) -> None:
    """Assign the weights and optimizer state saved in `path` to `model` (`folder`: what to remove
    to start over, named in the error when they do not fit)."""
    variables = checkpoint_variables(model)
    with np.load(path) as saved:
        if set(saved.files) != set(variables):
            raise CheckpointMismatch(
                f"checkpoint {path.name} holds {sorted(saved.files)}, the model of "
                f"spec.model has {sorted(variables)}: restore the spec it was trained with, "
                f"or remove {folder} to start over")
        for name, variable in variables.items():
            if tuple(saved[name].shape) != tuple(variable.shape):
                raise CheckpointMismatch(
                    f"checkpoint {path.name}: {name} has shape {saved[name].shape}, "
                    f"the model of spec.model has {tuple(variable.shape)}")
            variable.assign(saved[name])


def save_variables(folder: Path, name: str, model: keras.Model) -> None:
    """Write the model's weights and optimizer state to `folder/name` (atomically, synced)."""
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{uuid.uuid4().hex}.partial.npz"
    try:
        with temporary.open("wb") as file:
            np.savez(file, **{key: v.numpy() for key, v in checkpoint_variables(model).items()})
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, folder / name)
    finally:
        temporary.unlink(missing_ok=True)


def save_checkpoint(folder: Path, model: keras.Model, state: TrainState,
                    obsolete: tuple[str | None, ...] = ()) -> None:
    """Write the weights, then the state that names them; then remove the previous weights
    (and the `obsolete` files the new state no longer names)."""
    name = f"epoch-{state.epochs_done:05d}-batch-{state.batches_done:07d}.npz"
    save_variables(folder, name, model)
    previous, state.weights_file = state.weights_file, name
    write_json_atomic(folder / STATE_FILE, state.to_json())
    for old in (previous, *obsolete):
        if old is not None and old not in (name, state.best_weights_file):
            (folder / old).unlink(missing_ok=True)


def restore_best(folder: Path, state: TrainState, model: keras.Model) -> bool:
    """Load the best epoch's weights into `model`; False when the state names none."""
    if state.best_weights_file is None:
        return False
    load_variables(folder / state.best_weights_file, model, folder)
    return True


class Checkpointer(keras.callbacks.Callback):  # type: ignore[misc]
    """Keras callback: checkpoint on time, at epoch ends and where a stop is requested; with
    `early` (and a validation loss in the epoch's logs), keep the best epoch and stop once it
    is `early.patience` epochs old. Everything it decides is in the state, so a resumed run
    judges as an uninterrupted one."""

    def __init__(self, folder: Path, state: TrainState, every_seconds: float,
                 batches_per_epoch: int, stop: threading.Event,
                 early: EarlyStoppingSpec | None = None) -> None:
        super().__init__()
        self.folder, self.state, self.every_seconds = folder, state, every_seconds
        self.batches_per_epoch, self.stop, self.early = batches_per_epoch, stop, early
        self.skipped = 0
        self.stopped = False
        self.saved_at = time.monotonic()

    def begin_epoch(self, skipped: int) -> None:
        """The next `fit` call trains one epoch of which `skipped` batches are already done."""
        self.skipped = skipped

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        done = self.skipped + batch + 1
        if done >= self.batches_per_epoch:
            return  # the epoch's end writes this one
        self.state.batches_done = done
        if self.stop.is_set():
            self.stopped = True
            self.model.stop_training = True
        elif time.monotonic() - self.saved_at < self.every_seconds:
            return
        self._save()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if self.stopped:
            return
        for key, value in (logs or {}).items():
            self.state.history.setdefault(key, []).append(float(value))
        self.state.epochs_done, self.state.batches_done = epoch + 1, 0
        obsolete = None
        if self.early is not None and logs and "val_loss" in logs:
            obsolete = self._judge(epoch + 1, float(logs["val_loss"]))
        self._save(obsolete)

    def _judge(self, epoch: int, loss: float) -> str | None:
        """Record a better epoch (its weights too) or stop once the best is too old; returns a
        weights file the state no longer names."""
        assert self.early is not None
        state = self.state
        if state.best_loss is None or loss < state.best_loss - self.early.min_delta:
            state.best_epoch, state.best_loss = epoch, loss
            if self.early.restore_best_weights:
                previous, state.best_weights_file = state.best_weights_file, f"best-{epoch:05d}.npz"
                save_variables(self.folder, state.best_weights_file, self.model)
                return previous
        elif self.early.patience and epoch - state.best_epoch >= self.early.patience:
            state.stopped_early = True
            self.model.stop_training = True
        return None

    def _save(self, obsolete: str | None = None) -> None:
        save_checkpoint(self.folder, self.model, self.state, (obsolete,))
        self.saved_at = time.monotonic()
