"""Train mode's data: a topic's exact offset ranges read, decoded and profiled, then as rows.

1. `read_all` reads every partition's range once (`record_batches`: librdkafka
   batches of each partition's exact range, in a fixed order, or
   tensorflow-io's reader with `client: tensorflow-io`), decoding each batch
   as it arrives (`workload.data.decode`): bad records are counted per
   reason and kept for the dead-letter topic when one is set; the good ones
   are profiled (`workload.model.profile`: feature statistics, categorical
   values, labels) and, with `train.cache`, kept in memory for the epochs.
2. `split_validation` holds out the last `train.validationFraction` of each
   partition's range (the same records on every run).
3. `training_rows` / `validation_rows` hand the model its inputs
   (`workload.model.inputs`) and labels; `epoch_dataset` shuffles (seeded by
   the epoch number, so a resumed epoch sees the same order) and batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf

from workload.data.decode import BadRecord, Decoded, LabelRule, make_decoder, sum_counts
from workload.data.decoded import Task, no_texts
from workload.data.read_ahead import read_ahead
from workload.kafka.bounds import record_count
from workload.kafka.connection import KafkaConnection
from workload.kafka.ranges import KafkaReadError, read_ranges
from workload.model.build import input_signature
from workload.model.inputs import InputLayout, ModelInputs
from workload.model.profile import RunningProfile, TaskFacts, TrainingProfile, with_labels
from workload.modes.train_progress import TrainProgress
from workload.permanent import PermanentError
from workload.spec import DataSpec, KafkaClient, StreamingTrainingJobSpec

Floats = npt.NDArray[np.float32]

BatchObserver = Callable[[int, npt.NDArray[np.float32]], None]
"""Sees each batch a worker of a group is about to train: the epoch (0-based) and the batch's
numeric features (a record seen but never trained can only be one of a step cut short by a
failure)."""

SHUFFLE_SEED = 1_000_003
"""Base of the per-epoch shuffle seed (epoch `e` uses `SHUFFLE_SEED + e`)."""

VALIDATION_BATCH = 4096
"""Rows per step when validating (memory, not learning: any size gives the same figures)."""


def untuned() -> tf.data.Options:
    """Options for a pipeline iterated anew each epoch (its batches, the validation slice):
    no tf.data autotuning.

    The autotuning thread wakes 10 ms after an iterator starts, then after 20, 40, ... ms
    (doubling up to 60 s), and on TensorFlow 2.21 dropping an iterator while training keeps
    both cores busy often waits for that thread's next wake-up. Measured with the tutorial's
    model, batch 64: 4 of 14 epochs of ~2 s ended only at 2.55 s (10 ms x 255; 0.34-0.53 s
    spent dropping the iterator), and a 25 ms validation at 62 ms now and then; with these
    options none of 12 epochs waited. There is nothing here to tune (shuffle and batch of
    rows in memory or from one Kafka reader), and `prefetch(AUTOTUNE)` keeps its own buffer
    tuner, which grows the buffer when the model finds it empty."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


class TrainError(RuntimeError):
    """Training cannot go on with this data (an empty topic, too many bad records)."""


class TooManyBadRecords(TrainError, PermanentError):
    """More training records are malformed than `data.maxBadRecordsRatio` allows: the same
    records would be read again by another pod."""

    reason = "TooManyBadRecords"


@dataclass
class ReadSummary:
    """What one pass over the offset ranges found."""

    records: int = 0
    good: int = 0
    bad_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    parts: list[Decoded] = field(default_factory=list)
    """The decoded batches kept in memory (`keep`)."""
    dead_letters: list[BadRecord] = field(default_factory=list)
    profile: TrainingProfile | None = None

    @property
    def bad(self) -> int:
        """Records set aside."""
        return sum(self.bad_by_reason.values())


def record_batches(connection: KafkaConnection, topic: str, offsets: dict[int, tuple[int, int]],
                   client: KafkaClient = "librdkafka") -> Iterator[tuple[list[bytes], list[bytes]]]:
    """`(keys, values)` batches of every record in `offsets`, in the same order on every
    iteration (partitions in id order, each in offset order)."""
    if record_count(offsets) == 0:
        raise KafkaReadError(f"topic {topic!r} has no records in offsets {offsets}")
    if client == "tensorflow-io":
        from workload.kafka.tfio import replay_dataset

        for keys, values in replay_dataset(connection, topic, offsets):
            yield keys.numpy().tolist(), values.numpy().tolist()
        return
    for batch in read_ranges(connection, topic, offsets):
        yield batch.keys, batch.values


def decoded_batches(connection: KafkaConnection, topic: str,
                    offsets: dict[int, tuple[int, int]], data: DataSpec,
                    client: KafkaClient = "librdkafka", labels: LabelRule | None = None
                    ) -> Iterator[tuple[list[bytes], list[bytes], Decoded]]:
    """Kafka to decoded batches: each batch's keys and values with what they decoded to."""
    decode = make_decoder(data, labels, topic)
    try:
        for keys, values in read_ahead(record_batches(connection, topic, offsets, client)):
            yield keys, values, decode(keys, values)
    except tf.errors.OpError as error:  # tensorflow-io's reader
        raise KafkaReadError(f"reading topic {topic!r} failed: {error.message}") from error


def read_all(connection: KafkaConnection, topic: str, offsets: dict[int, tuple[int, int]],
             data: DataSpec, keep: bool, display: TrainProgress,
             client: KafkaClient = "librdkafka", labels: LabelRule | None = None) -> ReadSummary:
    """One pass: count good and bad records, profile the good ones, keep them when `keep`."""
    rule = labels or LabelRule()
    summary = ReadSummary()
    profile = RunningProfile(data, rule.task)
    expected = record_count(offsets)
    task = display.task("reading Kafka", expected)
    started = time.perf_counter()
    for keys, values, decoded in decoded_batches(connection, topic, offsets, data, client, rule):
        summary.good += len(decoded.labels)
        summary.records += len(values)
        profile.add(decoded)
        sum_counts(summary.bad_by_reason, decoded.counts())
        if keep:
            summary.parts.append(decoded)
        if data.dead_letter_topic is not None:
            summary.dead_letters.extend(decoded.bad_records(keys, values))
        display.update(task, summary.records, started)
    display.update(task, summary.records, started, force=True)
    summary.seconds = time.perf_counter() - started
    summary.profile = profile.result()
    return summary


def learning_rule(task: Task, classes: list[str] | None) -> LabelRule:
    """How training first reads labels: multiclass with the spec's classes, or learning them."""
    return LabelRule(task, tuple(classes) if task == "multiclass" and classes else None)


def reading_rule(facts: TaskFacts) -> LabelRule:
    """How labels are read once the task's facts are known (an epoch that reads Kafka again)."""
    return LabelRule(facts.task, facts.classes)


def task_facts(spec: StreamingTrainingJobSpec, profile: TrainingProfile,
               held_out: Sequence[TrainingProfile | None]) -> TaskFacts:
    """The task's facts from the training profile (learned classes: of the held-out records'
    labels too, so none of them is unknown)."""
    others = [other for other in held_out if other is not None]
    return with_labels(profile, others).facts(spec.model.task, spec.model.classes)


def task_results(facts: TaskFacts) -> dict[str, Any]:
    """What the results file says about the task."""
    results: dict[str, Any] = {"task": facts.task}
    if facts.classes is not None:
        results["classes"] = list(facts.classes)
    if facts.task == "regression":
        results["target"] = {"mean": facts.target_mean, "std": facts.target_std}
    return results


def with_classes(summary: ReadSummary, facts: TaskFacts) -> ReadSummary:
    """`summary` whose kept multiclass batches carry class indices of the facts' classes
    (learned from these very records, or named by the spec: the decoder set aside the rest)."""
    if facts.classes is None:
        return summary
    return replace(summary, parts=[part.with_classes(facts.classes) for part in summary.parts])


HISTORY_METRICS = {"train_loss": "loss", "train_accuracy": "accuracy", "train_rmse": "rmse",
                   "validation_loss": "val_loss", "validation_accuracy": "val_accuracy",
                   "validation_rmse": "val_rmse"}
"""`Metrics` fields taken from the training history, by history key."""


def history_metrics(history: dict[str, list[float]], epoch: int) -> dict[str, float | None]:
    """The report's training figures at `epoch` (from 1) of the history."""
    return {name: figure_at(history, key, epoch) for name, key in HISTORY_METRICS.items()}


def split_validation(offsets: dict[int, tuple[int, int]], fraction: float
                     ) -> tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]]:
    """(training, validation) ranges: the last `fraction` of each partition's range validates."""
    training, validation = {}, {}
    for partition, (start, end) in offsets.items():
        held = int((end - start) * fraction)
        training[partition] = (start, end - held)
        if held:
            validation[partition] = (end - held, end)
    return training, validation


def merged(first: ReadSummary, second: ReadSummary) -> ReadSummary:
    """Counts of both reads (for the bad-record check and the report); `first`'s rows."""
    bad = dict(first.bad_by_reason)
    for reason, count in second.bad_by_reason.items():
        bad[reason] = bad.get(reason, 0) + count
    return ReadSummary(first.records + second.records, first.good + second.good, bad,
                       first.seconds + second.seconds,
                       dead_letters=first.dead_letters + second.dead_letters,
                       profile=first.profile)


def check_bad_records(summary: ReadSummary, topic: str, data: DataSpec) -> None:
    """Fail when malformed records exceed the allowed share, saying how many and why."""
    if summary.records == 0:
        raise TrainError(f"topic {topic!r} has no records to train on")
    ratio = summary.bad / summary.records
    if summary.good == 0 or ratio > data.max_bad_records_ratio:
        reasons = ", ".join(f"{reason}: {count}"
                            for reason, count in sorted(summary.bad_by_reason.items()))
        raise TooManyBadRecords(
            f"{summary.bad} of {summary.records} records of topic {topic!r} ({ratio:.1%}) are "
            f"malformed ({reasons}); data.maxBadRecordsRatio allows "
            f"{data.max_bad_records_ratio:.1%}")


def epoch_dataset(source: tf.data.Dataset, spec: StreamingTrainingJobSpec, epoch: int,
                  skip_batches: int = 0, batch_size: int | None = None) -> tf.data.Dataset:
    """Epoch `epoch`'s batches of (inputs, labels) rows, in an order fixed by `epoch` (a
    resumed epoch repeats it), without the first `skip_batches`; batches of `batch_size` rows
    (default `train.batchSize`; a worker of a group takes its share of it)."""
    assert spec.train is not None
    if spec.train.shuffle_buffer > 0:
        source = source.shuffle(spec.train.shuffle_buffer, seed=SHUFFLE_SEED + epoch,
                                reshuffle_each_iteration=False)
    size = batch_size or spec.train.batch_size
    return (source.batch(size).skip(skip_batches).prefetch(tf.data.AUTOTUNE)
            .with_options(untuned()))


def kept_rows(summary: ReadSummary, data: DataSpec) -> tuple[ModelInputs, Floats]:
    """The kept batches as the model's inputs and labels (and dropped from the summary)."""
    parts, summary.parts = summary.parts, []
    layout = InputLayout.of(data)
    width = len(data.categorical_names)
    features = (np.concatenate([part.features for part in parts]) if parts
                else np.zeros((0, layout.numeric), np.float32))
    categories = (np.concatenate([part.category_table for part in parts]) if parts
                  else no_texts(0, width))
    labels = (np.concatenate([part.labels for part in parts]) if parts
              else np.zeros(0, np.float32))
    return layout.arrays(features, categories), labels


def training_rows(summary: ReadSummary, connection: KafkaConnection, topic: str,
                  offsets: dict[int, tuple[int, int]], data: DataSpec,
                  cache: bool, client: KafkaClient = "librdkafka",
                  labels: LabelRule | None = None) -> tf.data.Dataset:
    """(inputs, labels) rows: from memory when cached, else read from Kafka each epoch (labels
    read as `labels` says)."""
    if cache:
        return tf.data.Dataset.from_tensor_slices(kept_rows(summary, data))
    layout = InputLayout.of(data)

    def batches() -> Iterator[tuple[ModelInputs, Floats]]:
        for _, _, decoded in decoded_batches(connection, topic, offsets, data, client, labels):
            yield layout.of_decoded(decoded), decoded.labels

    rows = tf.data.Dataset.from_generator(batches, output_signature=(
        input_signature(data), tf.TensorSpec([None], tf.float32))).unbatch()
    # Kafka reads have no known length; stating it lets Keras count steps (and fails loudly
    # should an epoch's read find another number of good records).
    return rows.apply(tf.data.experimental.assert_cardinality(summary.good))


def validation_rows(held_out: ReadSummary, data: DataSpec) -> tf.data.Dataset | None:
    """Batches of the held-out (inputs, labels), or `None` when nothing is held out."""
    if not held_out.good:
        return None
    return tf.data.Dataset.from_tensor_slices(kept_rows(held_out, data)).batch(
        VALIDATION_BATCH).cache().with_options(untuned())


def figure_at(history: dict[str, list[float]], key: str, epoch: int) -> float | None:
    """`key`'s figure of epoch `epoch` (from 1), or `None`."""
    values = history.get(key)
    return values[epoch - 1] if values and len(values) >= epoch else None
