"""The model side of online mode: test-then-train on each batch, counters, checkpoints, exports.

Kept apart from the stream loop (`online`) so the loop stays readable and
this part holds everything TensorFlow. State is a handful of counters, so
memory does not grow with the stream. Predicting and training are compiled
once with a fixed input signature: Keras' `train_on_batch` kept about 4 KB
per call (measured: 16 MiB per 4,000 batches; the compiled step, flat).

A checkpoint (`online/checkpoint/`) is the model file plus `state.json`,
which names it and holds the counters and, per partition, the offset of the
next record the model has not learned. The model file is written first under
a new name, then `state.json` replaces the previous one atomically: a learner
killed at any moment restarts from a model and offsets that belong together,
so the records it learned after that checkpoint are learned again by a model
that never saw them (none twice, none skipped). A checkpoint of another topic
or consumer group is ignored.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from workload.artifacts import Artifacts, read_json, write_json_atomic
from workload.data.decode import LabelRule, make_decoder, sum_counts
from workload.identity import RunIdentity
from workload.kafka.connection import KafkaConnection
from workload.model.build import build_model, compile_model, input_signature, load_model
from workload.model.export import write_keras_atomic, write_saved_model_atomic
from workload.model.inputs import InputLayout
from workload.model.profile import RunningProfile, TaskFacts
from workload.model.task import task_of
from workload.model.user import register_user_layers
from workload.spec import StreamingTrainingJobSpec

if TYPE_CHECKING:
    from workload.modes.gate import PromotionGate

log = logging.getLogger(__name__)

CHECKPOINT_STATE = "state.json"
"""The checkpoint's index inside `online/checkpoint/`."""


class OnlineError(RuntimeError):
    """The learner cannot start: its model does not solve the spec's task."""


class OnlineLearner:
    """A model that scores each batch before training on it, and checkpoints and exports itself."""

    def __init__(self, spec: StreamingTrainingJobSpec, connection: KafkaConnection,
                 artifacts: Artifacts, identity: RunIdentity) -> None:
        assert spec.online is not None
        self._spec = spec
        self._online = spec.online
        self._connection = connection
        self._artifacts = artifacts
        self._identity = identity
        self.resume_ignored: str | None = None
        """Why a checkpoint found in the folder was not resumed from (another job's, or
        other settings), if one was."""
        self._layout = InputLayout.of(spec.data)
        self._model: keras.Model | None = None
        self.started_from = "fresh"
        self.records = 0
        self.correct = 0
        """Records predicted right before they were learned (classification)."""
        self.squared_errors = 0.0
        """Sum of squared errors of predictions made before learning (regression)."""
        self.bad_by_reason: dict[str, int] = {}
        self.exports = 0
        self.resume_positions: dict[int, int] = {}
        """Per partition, where the restored checkpoint's model stopped learning (empty: none)."""
        self._checkpoint_model: str | None = None
        register_user_layers(spec.model)  # a `UserModelError` is permanent: the runner says so
        saved = self._own_checkpoint()
        if saved is not None:
            self._resume(saved)
        else:
            for start in (artifacts.keras_model, artifacts.source_model):
                if start is not None and start.exists():
                    self._use(load_model(start, self._spec.data))
                    self.started_from = str(start)
                    break
        self._facts = (task_of(self._model) if self._model is not None else
                       TaskFacts(spec.model.task, tuple(spec.model.classes or ()) or None))
        if self._facts.task == "multiclass" and not self._facts.classes:
            raise OnlineError("a multiclass model learned online from nothing needs its "
                              "classes: name them in model.classes (or train first)")
        if self._facts.task != spec.model.task:
            raise OnlineError(f"the model learning online ({self.started_from}) predicts task "
                             f"{self._facts.task}, spec.model.task says {spec.model.task}")
        self._decode = make_decoder(spec.data, LabelRule(self._facts.task, self._facts.classes),
                                    self._online.topic)
        self.gate = _gate(spec, artifacts)
        """With `serve` beside: compares this model with the served one, promotes it."""
        if self.gate is not None and saved is not None:
            self.gate.resume(int(saved.get("promotionDecisions", 0)),
                             int(saved.get("promotions", 0)))
        self._records_at_export = self.records
        self._time_at_export = time.monotonic()

    @property
    def _checkpoints(self) -> Path:
        return self._artifacts.online / "checkpoint"

    def _own_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint's state when this job wrote it, with these settings, for this topic
        and consumer group (see `workload.identity`); anything else is ignored with a warning."""
        state: dict[str, Any] | None = read_json(self._checkpoints / CHECKPOINT_STATE)
        if state is None:
            return None
        why = self._identity.mismatch(state.get("jobUid"), state.get("specDigest"))
        if why is None and (state.get("topic"), state.get("consumerGroup")) != (
                self._online.topic, self._online.consumer_group):
            why = (f"it is of topic {state.get('topic')!r} and consumer group "
                   f"{state.get('consumerGroup')!r}")
        if why is None:
            return state
        self.resume_ignored = (f"ignored the online checkpoint in {self._checkpoints}: {why}; "
                               "learning starts from the trained model")
        log.warning(self.resume_ignored)
        return None

    def _resume(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint: its model, counters and offsets."""
        self._checkpoint_model = str(state["model"])
        self._use(load_model(self._checkpoints / self._checkpoint_model, self._spec.data))
        self.records, self.correct = int(state["recordsOnline"]), int(state["correct"])
        self.squared_errors = float(state.get("squaredErrors", 0.0))
        self.bad_by_reason = {str(k): int(v) for k, v in state["badRecordsByReason"].items()}
        self.exports = int(state["exports"])
        self.resume_positions = {int(p): int(o) for p, o in state["positions"].items()}
        self.started_from = f"checkpoint {self._checkpoint_model}"

    def _use(self, model: keras.Model) -> None:
        compile_model(model, self._spec.model)
        self._model = model
        loss, optimizer = model.loss, model.optimizer
        inputs_spec = input_signature(self._spec.data)

        def predict(inputs: Any) -> tf.Tensor:
            return model(inputs, training=False)

        def train(inputs: Any, labels: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                value = loss(tf.reshape(labels, [-1, 1]), model(inputs, training=True))
            gradients = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return value

        self._predict = tf.function(predict, input_signature=[inputs_spec], autograph=False)
        self._train = tf.function(
            train, input_signature=[inputs_spec, tf.TensorSpec([None], tf.float32)],
            autograph=False)

    def learn(self, keys: list[bytes], values: list[bytes]) -> int:
        """Decode a batch, score its good records, then train on them; returns records read."""
        decoded = self._decode(keys, values)
        bad = decoded.counts()
        if bad:
            sum_counts(self.bad_by_reason, bad)
            topic = self._spec.data.dead_letter_topic
            if topic is not None:
                from workload.kafka.dead_letter import send_dead_letters

                send_dead_letters(self._connection, topic, self._online.topic,
                                  decoded.bad_records(keys, values))
        labels = decoded.labels
        if len(labels):
            if self._model is None:
                profile = RunningProfile(self._spec.data, self._facts.task)
                profile.add(decoded)
                self._use(build_model(self._spec.model, self._spec.data, profile.result(),
                                      self._facts))
                self._facts = task_of(self._model)
            assert self._model is not None
            inputs = self._layout.of_decoded(decoded)
            outputs = self._predict(inputs).numpy()
            if self.gate is not None:  # both models score the batch before training on it
                self.gate.observe(inputs, labels, outputs)
            self._test(labels, outputs)
            self.records += len(labels)
            self._train(inputs, labels)
        return len(values)

    def _test(self, labels: npt.NDArray[np.float32], outputs: npt.NDArray[np.float32]) -> None:
        """Count how the model did on a batch before learning it (prequential figures)."""
        if self._facts.task == "regression":
            self.squared_errors += float(np.square(outputs.reshape(-1) - labels).sum())
        elif self._facts.task == "multiclass":
            self.correct += int(np.count_nonzero(outputs.argmax(axis=1) == labels))
        else:
            self.correct += int(np.count_nonzero((outputs.reshape(-1) > 0.5) == (labels > 0.5)))

    def export_if_due(self, positions: dict[int, int]) -> None:
        """Export when `exportEveryRecords` records or `exportEverySeconds` seconds have passed."""
        every_records = self._online.export_every_records
        every_seconds = self._online.export_every_seconds
        due_records = every_records and self.records - self._records_at_export >= every_records
        due_time = every_seconds and time.monotonic() - self._time_at_export >= every_seconds
        if (due_records or due_time) and self._model is not None:
            self.export(final=False, positions=positions)

    def ensure_checkpoint(self, positions: dict[int, int]) -> None:
        """Write a first checkpoint (once there is a model) if this lineage has none: a
        restart then always finds the model and offsets to resume from."""
        if self._checkpoint_model is None:
            self.checkpoint(positions)

    def checkpoint(self, positions: dict[int, int]) -> None:
        """Save the model with the offsets it has learned up to (see the module docstring)."""
        if self._model is None:
            return  # nothing learned yet: the group's committed offsets say where to start
        name = f"model-{uuid.uuid4().hex[:12]}.keras"
        write_keras_atomic(self._model, self._checkpoints / name)
        previous, self._checkpoint_model = self._checkpoint_model, name
        write_json_atomic(self._checkpoints / CHECKPOINT_STATE, {
            **self.state(), "correct": self.correct, "squaredErrors": self.squared_errors,
            "model": self._checkpoint_model,
            "topic": self._online.topic, "consumerGroup": self._online.consumer_group,
            "jobUid": self._identity.job_uid, "specDigest": self._identity.spec_digest,
            "positions": {str(p): offset for p, offset in sorted(positions.items())},
        })
        if previous is not None and previous != self._checkpoint_model:
            (self._checkpoints / previous).unlink(missing_ok=True)

    def export(self, final: bool, positions: dict[int, int] | None = None) -> None:
        """Checkpoint (when `positions` are known), then write the Keras file (SavedModel too
        when final) and `state.json`, each atomically."""
        folder = self._artifacts.online
        if self._model is not None:
            if positions is not None:
                self.checkpoint(positions)
            write_keras_atomic(self._model, folder / "model.keras")
            if final:
                write_saved_model_atomic(self._model, folder / "saved_model")
            if self.gate is not None:
                self.gate.consider(self._model)
        self.exports += 1
        self._records_at_export = self.records
        self._time_at_export = time.monotonic()
        write_json_atomic(folder / "state.json", {**self.state(), "final": final})

    def state(self) -> dict[str, Any]:
        """The counters, as exported and reported."""
        return {
            "recordsOnline": self.records,
            "onlineAccuracy": (self.correct / self.records if self.records
                               and self._facts.task != "regression" else None),
            "onlineRmse": (math.sqrt(self.squared_errors / self.records) if self.records
                           and self._facts.task == "regression" else None),
            "badRecords": sum(self.bad_by_reason.values()),
            "badRecordsByReason": dict(sorted(self.bad_by_reason.items())),
            "exports": self.exports,
            **(self.gate.counts() if self.gate is not None else {}),
            "startedFrom": self.started_from,
            "exportedAt": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "residentMemoryBytes": resident_memory_bytes(),
        }


def _gate(spec: StreamingTrainingJobSpec, artifacts: Artifacts) -> PromotionGate | None:
    """The promotion gate when the job serves too (and there is a model served to compare
    with)."""
    if spec.serve is None:
        return None
    from workload.modes.gate import PromotionGate
    from workload.modes.serving_model import NoModelToServe

    try:
        return PromotionGate(spec, artifacts)
    except NoModelToServe as missing:
        log.warning("no promotion of online models: %s", missing)
        return None


def resident_memory_bytes() -> int | None:
    """This process's resident memory now (Linux), for the exported state."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
