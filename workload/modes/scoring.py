"""Score exact offset ranges of a topic with a trained model into a `Tally` (evaluate's engine).

Records come from `offset_reader` (exact `[start, stop)` ranges, one reader
per partition kept for the whole run, partitions read in parallel), are
decoded in one compiled call per chunk with the vectorised
decoder (bad records set aside with their reason), and the good ones are
scored by the Keras model in a compiled function. Nothing here touches the
ledger or the consumer group: `evaluate` decides when a chunk's tally
becomes durable. A chunk that returns fewer records than its offset range
holds (a broker restart mid-read, records deleted by retention, offset gaps
of transactional producers) fails instead of being counted as covered.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from workload.data.decode import count_reasons, decode_batch_tensors
from workload.kafka_connection import KafkaConnection
from workload.model.build import load_model
from workload.modes.ledger import Tally
from workload.modes.offset_reader import open_readers
from workload.spec import DataSpec

BadRecordSink = Callable[[Any, Any, Any], None]
"""Receives the keys, values and reasons of a batch's bad records (e.g. a dead-letter sender)."""


PIECE_RECORDS = 8192
"""Records decoded and scored per task; a chunk's pieces run in parallel threads."""


class ScoringError(RuntimeError):
    """A range could not be read as its offsets promised."""


class Scorer:
    """A loaded model plus the decoding of one topic's records."""

    def __init__(self, model_path: Path, data: DataSpec, connection: KafkaConnection,
                 topic: str, partitions: list[int], batch_size: int,
                 bad_record_sink: BadRecordSink | None = None) -> None:
        self._data = data
        self._topic = topic
        self._readers = open_readers(connection, topic, partitions)
        self._pool = ThreadPoolExecutor(max_workers=max(2, len(partitions), os.cpu_count() or 1))
        self._batch_size = batch_size
        self._sink = bad_record_sink
        model = load_model(model_path)
        width = len(data.feature_names)

        def predict(features: tf.Tensor) -> tf.Tensor:
            return tf.reshape(model(features, training=False), [-1])

        def decode(keys: tf.Tensor, values: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            return decode_batch_tensors(keys, values, data)

        # Both compiled once per run: a chunk never re-traces.
        self._predict = tf.function(
            predict, input_signature=[tf.TensorSpec([None, width], tf.float32)], autograph=False)
        self._decode = tf.function(
            decode, input_signature=[tf.TensorSpec([None], tf.string)] * 2, autograph=False)

    def score(self, ranges: dict[int, tuple[int, int]], first_offsets: dict[int, int]) -> Tally:
        """The tally of every record in `ranges` (per partition `[start, stop)`).

        Each partition's range is read in one call (partitions in parallel),
        then decoded and scored in parallel pieces (the model sees batches of
        `batch_size`). `first_offsets` holds each
        partition's first record (see `PartitionReader.read`).
        """
        wanted = {p: r for p, r in ranges.items() if r[1] > r[0]}
        try:
            parts = list(self._pool.map(
                lambda p: self._readers[p].read(*wanted[p], first_offsets[p]), sorted(wanted)))
        except (tf.errors.OpError, TimeoutError) as error:
            where = f"topic {self._topic!r}, offsets {ranges}"
            raise ScoringError(f"{where}: {error}") from None
        keys = tf.concat([k for k, _ in parts], axis=0)
        values = tf.concat([v for _, v in parts], axis=0)
        expected = sum(stop - start for start, stop in wanted.values())
        if int(tf.size(values)) != expected:
            raise ScoringError(
                f"topic {self._topic!r}, offsets {ranges}: read {int(tf.size(values))} records, "
                f"expected {expected} (broker unavailable, or records deleted or missing)")
        pieces = [(first, min(first + PIECE_RECORDS, expected))
                  for first in range(0, expected, PIECE_RECORDS)]
        scored = list(self._pool.map(
            lambda piece: self._score_piece(keys[piece[0]:piece[1]], values[piece[0]:piece[1]]),
            pieces))
        tally = Tally()
        for labels, scores, _ in scored:
            tally.add_scores(labels, scores)
        reasons = np.concatenate([piece_reasons for _, _, piece_reasons in scored])
        bad = count_reasons(reasons)
        if bad:
            tally.add_bad(bad)
            if self._sink is not None:
                mask = reasons != b""
                self._sink(keys.numpy()[mask], values.numpy()[mask], reasons[mask])
        return tally

    def _score_piece(self, keys: tf.Tensor, values: tf.Tensor) -> tuple[Any, Any, Any]:
        """Labels, scores and reasons of one slice of a chunk (slices run in parallel)."""
        features, labels, reasons = self._decode(keys, values)
        scores = [self._predict(features[first:first + self._batch_size]).numpy()
                  for first in range(0, int(tf.shape(labels)[0]), self._batch_size)]
        joined = np.concatenate(scores) if scores else np.zeros(0, np.float32)
        return labels.numpy(), joined, reasons.numpy()
