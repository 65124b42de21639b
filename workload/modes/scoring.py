"""Score exact offset ranges of a topic with a trained model into a `Tally` (evaluate's engine).

Records come from exact `[start, stop)` ranges, one reader per partition
kept for the whole run (`workload.kafka.ranges` through librdkafka, or
tensorflow-io's reader with `client: tensorflow-io`), partitions read in
parallel threads; they are decoded in parallel pieces by the batch decoder
(`workload.data.decode`: bad records set aside with their reason), and the
good ones are scored by the Keras model in a compiled function. Nothing
here touches the ledger or the consumer group: `evaluate` decides when a
chunk's tally becomes durable. A chunk that returns fewer records than its
offset range holds (a broker restart mid-read, records deleted by
retention, offset gaps of transactional producers) fails instead of being
counted as covered.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from workload.data.decode import BadRecord, Decoded, LabelRule, make_decoder, sum_counts
from workload.kafka.connection import KafkaConnection
from workload.kafka.ranges import KafkaReadError, PartitionReader
from workload.model.build import input_signature
from workload.model.inputs import InputLayout
from workload.model.task import task_of
from workload.modes.tally import Numbers, Tally, new_tally
from workload.spec import DataSpec, KafkaClient

BadRecordSink = Callable[[list[BadRecord]], None]
"""Receives a chunk's bad records (e.g. a dead-letter sender)."""

Records = tuple[list[bytes], list[bytes]]
"""Keys and values of a range, in offset order."""


PIECE_RECORDS = 8192
"""Records decoded and scored per task; a chunk's pieces run in parallel threads."""


class ScoringError(RuntimeError):
    """A range could not be read as its offsets promised."""


class RangeReads:
    """Reads `[start, stop)` of any partition: one librdkafka reader per partition, each
    continuing where its last range ended."""

    def __init__(self, connection: KafkaConnection, topic: str,
                 positions: dict[int, int]) -> None:
        self._readers = {p: PartitionReader(connection, topic, p, start)
                         for p, start in positions.items()}

    def read(self, partition: int, start: int, stop: int) -> Records:
        """Keys and values of the range (which must start where the last one stopped)."""
        reader = self._readers[partition]
        if reader.position != start:
            raise ValueError(f"partition {partition} is at offset {reader.position}, not {start}")
        keys: list[bytes] = []
        values: list[bytes] = []
        for batch in reader.read(stop):
            keys += batch.keys
            values += batch.values
        return keys, values


class TensorflowIoRangeReads:
    """Reads `[start, stop)` of any partition through tensorflow-io's reader."""

    def __init__(self, connection: KafkaConnection, topic: str,
                 first_offsets: dict[int, int]) -> None:
        from workload.kafka.tfio_ranges import open_readers

        self._readers = open_readers(connection, topic, sorted(first_offsets))
        self._first_offsets = first_offsets

    def read(self, partition: int, start: int, stop: int) -> Records:
        """Keys and values of the range; a short read (its reader cannot tell) fails."""
        keys, values = self._readers[partition].read(start, stop, self._first_offsets[partition])
        if int(tf.size(values)) != stop - start:
            raise KafkaReadError(
                f"partition {partition} offsets {start}..{stop - 1}: read {int(tf.size(values))} "
                f"records, expected {stop - start} (broker unavailable, or records deleted)")
        return keys.numpy().tolist(), values.numpy().tolist()


class Scorer:
    """A loaded model plus the reading and decoding of one topic's records."""

    def __init__(self, model: keras.Model, data: DataSpec, connection: KafkaConnection,
                 topic: str, bounds: dict[int, tuple[int, int]], positions: dict[int, int],
                 batch_size: int, client: KafkaClient = "librdkafka",
                 bad_record_sink: BadRecordSink | None = None) -> None:
        self._data = data
        self._topic = topic
        self._reads: RangeReads | TensorflowIoRangeReads = (
            RangeReads(connection, topic, positions) if client == "librdkafka"
            else TensorflowIoRangeReads(connection, topic,
                                        {p: start for p, (start, _) in bounds.items()}))
        self._pool = ThreadPoolExecutor(max_workers=max(2, len(bounds), os.cpu_count() or 1))
        self._batch_size = batch_size
        self._sink = bad_record_sink
        self._facts = facts = task_of(model)
        self._layout = InputLayout.of(data)
        shape = [-1, facts.outputs] if facts.task == "multiclass" else [-1]

        def predict(inputs: Any) -> tf.Tensor:
            return tf.reshape(model(inputs, training=False), shape)

        # Compiled once per run: a chunk never re-traces.
        self._predict = tf.function(predict, input_signature=[input_signature(data)],
                                    autograph=False)
        self._decode = make_decoder(data, LabelRule(facts.task, facts.classes), topic)

    def new_tally(self) -> Tally:
        """An empty tally of the model's task."""
        return new_tally(self._facts.task, self._facts.classes)

    def score(self, ranges: dict[int, tuple[int, int]]) -> Tally:
        """The tally of every record in `ranges` (per partition `[start, stop)`).

        Each partition's range is read in one call (partitions in parallel),
        then decoded and scored in parallel pieces (the model sees batches of
        `batch_size`).
        """
        wanted = {p: r for p, r in ranges.items() if r[1] > r[0]}
        try:
            parts = list(self._pool.map(
                lambda p: self._reads.read(p, *wanted[p]), sorted(wanted)))
        except (tf.errors.OpError, TimeoutError, KafkaReadError) as error:
            where = f"topic {self._topic!r}, offsets {ranges}"
            raise ScoringError(f"{where}: {error}") from None
        keys = list(chain.from_iterable(part_keys for part_keys, _ in parts))
        values = list(chain.from_iterable(part_values for _, part_values in parts))
        pieces = [(first, min(first + PIECE_RECORDS, len(values)))
                  for first in range(0, len(values), PIECE_RECORDS)]
        scored = list(self._pool.map(
            lambda piece: self._score_piece(keys[piece[0]:piece[1]], values[piece[0]:piece[1]]),
            pieces))
        tally = self.new_tally()
        bad: dict[str, int] = {}
        bad_records: list[BadRecord] = []
        for (first, stop), (decoded, scores) in zip(pieces, scored, strict=True):
            tally.add(decoded.labels, scores)
            sum_counts(bad, decoded.counts())
            if self._sink is not None:
                bad_records.extend(decoded.bad_records(keys[first:stop], values[first:stop]))
        if bad:
            tally.add_bad(bad)
            if self._sink is not None:
                self._sink(bad_records)
        return tally

    def _score_piece(self, keys: list[bytes], values: list[bytes]) -> tuple[Decoded, Numbers]:
        """The decoded slice of a chunk and its good records' outputs (slices run in parallel):
        scores, class probabilities or predictions."""
        decoded = self._decode(keys, values)
        size = self._batch_size
        features, categories = decoded.features, decoded.category_table
        outputs = [self._predict(self._layout.arrays(features[first:first + size],
                                                     categories[first:first + size])).numpy()
                   for first in range(0, len(decoded.labels), size)]
        if outputs:
            return decoded, np.concatenate(outputs)
        return decoded, np.zeros((0, self._facts.outputs) if self._facts.task == "multiclass"
                                 else 0, np.float32)
