"""The tutorial's baselines: TensorFlow's Kafka tutorial pipeline, measured where it runs.

tensorflow-io 0.37.1 loads only beside TensorFlow 2.16, and its librdkafka
1.5.0 reads only Kafka 3.x: so these figures come from a child process in the
tensorflow-io set's environment (`make setup-tfio`, <cache>/venv-tfio) against
the benchmark's Kafka 3.9 broker, on the same rows as every other figure.
`bench.input_pipeline` starts it (`--tutorial-python`); run by hand:

    <venv-tfio>/bin/python -m bench.tutorial --bootstrap HOST:PORT --topic T \
        --test-topic T2 --test-records N

prints one JSON line:
- `seed_input_rps`: the tutorial's `from_kafka` pipeline (partition 0, one
  record per element, shuffle 64, per-record `decode_csv`, batch 64) from
  Kafka to decoded batches, no model; the better of two passes;
- `seed_train_epoch_s`: one epoch of the tutorial model over that pipeline;
- `seed_eval_rps`: the tutorial's evaluation: `KafkaGroupIODataset` with a
  fresh consumer group, per-record `decode_csv`, batches of 64, the model
  scoring each batch. Its stream only ends a stream timeout after the last
  record, so the clock stops when the last batch has been scored (its idle
  wait is not charged).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/tutorial.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workload import tflog

tflog.quiet()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.compute import BATCH, N_FEATURES, tutorial_model  # noqa: E402
from bench.harness import best_rate  # noqa: E402
from workload.kafka.connection import KafkaConnection  # noqa: E402
from workload.kafka.tfio import group_stream, tutorial_dataset  # noqa: E402

SEED_STREAM_TIMEOUT_MS = 2000
"""Idle time after which the tutorial's evaluation stream ends (not counted in its rate)."""


def decode_kafka_item(message: tf.Tensor, key: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The tutorial's decoding: one CSV record into its features, the key into its label."""
    columns = tf.io.decode_csv(message, [[0.0] for _ in range(N_FEATURES)])
    return tf.stack(columns), tf.strings.to_number(key)


def tutorial_pipeline(connection: KafkaConnection, topic: str) -> tf.data.Dataset:
    """The tutorial's input: one record per element, shuffle, per-record decode, batch."""
    dataset = tutorial_dataset(connection, topic)
    return (dataset.shuffle(BATCH).map(lambda item: decode_kafka_item(item.message, item.key))
            .batch(BATCH))


def count_records(dataset: tf.data.Dataset) -> int:
    """Iterate a dataset of (features, ...) batches; return the rows seen."""
    return sum(int(element[0].shape[0]) for element in dataset)


def seed_train_epoch_s(connection: KafkaConnection, topic: str) -> float:
    """Seconds of one epoch of the tutorial model over the tutorial's pipeline."""
    model = tutorial_model()
    started = time.perf_counter()
    model.fit(tutorial_pipeline(connection, topic), epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - started


def seed_eval_rps(connection: KafkaConnection, topic: str, records: int) -> float:
    """Records per second of the tutorial's evaluation of every test record."""
    model: keras.Model = tutorial_model()
    stream = group_stream(connection, topic, f"seed-{uuid.uuid4().hex[:8]}", SEED_STREAM_TIMEOUT_MS)
    dataset = stream.map(decode_kafka_item).batch(BATCH)
    started = time.perf_counter()
    rows, last = 0, started
    for features, labels in dataset:
        model.test_on_batch(features, labels)
        rows += int(labels.shape[0])
        last = time.perf_counter()
    if rows != records:
        raise RuntimeError(f"the tutorial's evaluation read {rows} of {records} records")
    return rows / (last - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="the Kafka 3.x broker")
    parser.add_argument("--topic", required=True, help="the training rows, one partition")
    parser.add_argument("--test-topic", required=True, help="the test rows")
    parser.add_argument("--test-records", type=int, required=True, help="records in --test-topic")
    arguments = parser.parse_args(argv)
    connection = KafkaConnection(arguments.bootstrap)
    figures = {
        "seed_input_rps": best_rate(
            lambda: count_records(tutorial_pipeline(connection, arguments.topic))),
        "seed_train_epoch_s": seed_train_epoch_s(connection, arguments.topic),
        "seed_eval_rps": seed_eval_rps(connection, arguments.test_topic, arguments.test_records),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # tensorflow-io's Kafka readers cannot be torn down safely at interpreter exit;
    # everything is printed, so leave now.
    os._exit(code)
