"""Benchmark: the Kafka tutorial's pipeline against streamtrain's, on the same broker and rows.

Run `python -m bench.input_pipeline [--bootstrap HOST:PORT] [--rows N]`
(`make bench`). Without `--bootstrap` a local broker is started for the run.
Figures (one process, one topic of one partition, the tutorial's layout):

- `seed_train_epoch_s`: the tutorial's pipeline (`from_kafka` partition 0,
  shuffle 64, per-record `decode_csv`, batch 64), one epoch of the tutorial model;
- `train_epoch_s`: train mode's pipeline at batch 64 (batch reads of every
  partition, batch decoding, the in-memory cache, shuffle 64): the wall time
  of a run of the tutorial's 10 epochs, Kafka read included, divided by 10.
  The tutorial re-reads Kafka every epoch, so its 10-epoch average is its
  one epoch. `train_first_epoch_s` (read + one epoch) and
  `train_cached_epoch_s` show the two parts;
- `compute_epoch_s`: the same model and batch size on in-memory arrays;
  `checkpoint_every_batch_epoch_s` the same with a checkpoint after every
  batch (`train.checkpointEverySeconds: 0`): what a replay of at most one
  batch after a SIGKILL costs;
- `seed_input_rps`, `input_rps`: records per second from Kafka to decoded
  batches, no model; the better of two passes (the first one also pays for
  building the pipeline and connecting);
- `raw_consumer_rps`: a plain kafka-python consumer reading and decoding every record.

Every model is built the same way and its training step compiled before the
clock starts, so only the epoch is timed. Other modules add rows with
`bench.harness.measurement` (evaluation figures live in `bench.eval_pipeline`
when it exists).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/input_pipeline.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workload import tflog

tflog.quiet()

import argparse  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from kafka import KafkaConsumer, TopicPartition  # noqa: E402
from rich.console import Console  # noqa: E402

from bench.harness import (  # noqa: E402
    TARGETS,
    BenchContext,
    Target,
    broker,
    measurement,
    prepare,
    report,
    run,
)
from workload.data.decode import decode_batch_tensors  # noqa: E402
from workload.data.kafka_input import partition_offsets, replay_dataset, tutorial_dataset  # noqa: E402
from workload.model.build import build_model  # noqa: E402
from workload.modes.checkpoint import Checkpointer, TrainState  # noqa: E402
from workload.modes.train import ReadSummary, epoch_dataset, read_all, training_rows  # noqa: E402
from workload.modes.train_progress import TrainProgress  # noqa: E402
from workload.spec import DataSpec, ModelSpec, StreamingTrainingJobSpec  # noqa: E402

BATCH = 64
"""The tutorial's batch size and shuffle buffer."""

EPOCHS = 10
"""The tutorial's epochs."""

PASSES = 2
"""Passes over the topic per input measurement; the fastest counts."""

N_FEATURES = 18

EXTRA_MODULES = ("bench.eval_pipeline",)
"""Modules that register more measurements, imported when present."""

TARGETS.extend([
    Target("train_epoch_s", "compute_epoch_s", 1.25, upper=True),
    Target("input_rps", "seed_input_rps", 30.0),
    Target("input_rps", "raw_consumer_rps", 0.5),
    Target("eval_rps", "seed_eval_rps", 20.0),
])


def tutorial_model() -> keras.Model:
    """The tutorial's MLP (its loss bug fixed), compiled, with its training step traced."""
    model = build_model(ModelSpec.model_validate({"preprocessing": "none"}), N_FEATURES)
    warm = tf.data.Dataset.from_tensor_slices(
        (np.zeros((2 * BATCH, N_FEATURES), np.float32), np.zeros(2 * BATCH, np.float32)))
    model.fit(warm.batch(BATCH), epochs=1, verbose=0)
    return model


def timed_fit(model: keras.Model, dataset: tf.data.Dataset) -> float:
    """Seconds for one epoch of `model` over `dataset`."""
    started = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - started


def tutorial_pipeline(context: BenchContext) -> tf.data.Dataset:
    """The tutorial's input: one record per element, shuffle, per-record decode, batch."""

    def decode_kafka_item(item: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        columns = tf.io.decode_csv(item.message, [[0.0] for _ in range(N_FEATURES)])
        return tf.stack(columns), tf.strings.to_number(item.key)

    dataset = tutorial_dataset(context.connection, context.topic)
    return dataset.shuffle(BATCH).map(decode_kafka_item).batch(BATCH)


def count_records(dataset: tf.data.Dataset) -> int:
    """Iterate a dataset of (features, ...) batches; return the rows seen."""
    return sum(int(element[0].shape[0]) for element in dataset)


def best_rate(make: Callable[[], tf.data.Dataset]) -> float:
    """Records per second of the fastest of `PASSES` passes, each building its pipeline anew."""
    rates = []
    for _ in range(PASSES):
        started = time.perf_counter()
        rows = count_records(make())
        rates.append(rows / (time.perf_counter() - started))
    return max(rates)


@measurement("the tutorial's input pipeline")
def seed_input(context: BenchContext) -> dict[str, float]:
    return {"seed_input_rps": best_rate(lambda: tutorial_pipeline(context))}


@measurement("streamtrain's input pipeline")
def fast_input(context: BenchContext) -> dict[str, float]:
    data = DataSpec()
    offsets = partition_offsets(context.connection, context.topic)

    def decoded() -> tf.data.Dataset:
        return replay_dataset(context.connection, context.topic, offsets).map(
            lambda keys, values: decode_batch_tensors(keys, values, data),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    return {"input_rps": best_rate(decoded)}


@measurement("a plain kafka-python consumer")
def raw_consumer(context: BenchContext) -> dict[str, float]:
    started = time.perf_counter()
    consumer = KafkaConsumer(**context.connection.kafka_python_settings(),
                             enable_auto_commit=False, max_poll_records=5000)
    partitions = [TopicPartition(context.topic, p)
                  for p in sorted(consumer.partitions_for_topic(context.topic) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    remaining = sum(consumer.end_offsets(partitions).values())
    rows: list[list[float]] = []
    labels: list[int] = []
    while remaining > 0:
        for records in consumer.poll(timeout_ms=1000).values():
            for record in records:
                rows.append([float(field) for field in record.value.split(b",")])
                labels.append(int(record.key))
            remaining -= len(records)
    consumer.close()
    return {"raw_consumer_rps": len(rows) / (time.perf_counter() - started)}


@measurement("the tutorial's training epoch")
def seed_train(context: BenchContext) -> dict[str, float]:
    model = tutorial_model()
    return {"seed_train_epoch_s": timed_fit(model, tutorial_pipeline(context))}


@measurement("streamtrain's training epoch")
def fast_train(context: BenchContext) -> dict[str, float]:
    spec = StreamingTrainingJobSpec.model_validate({
        "kafka": {"bootstrapServers": context.connection.bootstrap_servers},
        "train": {"topic": context.topic, "batchSize": BATCH, "shuffleBuffer": BATCH},
    })
    model = tutorial_model()
    offsets = partition_offsets(context.connection, context.topic)
    started = time.perf_counter()
    with TrainProgress(False) as display:
        summary: ReadSummary = read_all(
            context.connection, context.topic, offsets, spec.data, True, display)
    rows = training_rows(summary, context.connection, context.topic, offsets, spec.data, True)
    read_seconds = time.perf_counter() - started
    first_epoch = timed_fit(model, epoch_dataset(rows, spec, 0))
    later = [timed_fit(model, epoch_dataset(rows, spec, epoch)) for epoch in range(1, EPOCHS)]
    return {"train_epoch_s": (read_seconds + first_epoch + sum(later)) / EPOCHS,
            "train_first_epoch_s": read_seconds + first_epoch,
            "train_read_s": read_seconds,
            "train_cached_epoch_s": sum(later) / len(later)}


@measurement("the model on in-memory arrays")
def compute(context: BenchContext) -> dict[str, float]:
    model = tutorial_model()
    features = context.data.features.astype(np.float32)
    labels = context.data.labels.astype(np.float32)
    started = time.perf_counter()
    model.fit(features, labels, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
    return {"compute_epoch_s": time.perf_counter() - started}


@measurement("the model on in-memory arrays, checkpoint after every batch")
def checkpointed_compute(context: BenchContext) -> dict[str, float]:
    model = tutorial_model()
    features = context.data.features.astype(np.float32)
    labels = context.data.labels.astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="streamtrain-bench-checkpoints-") as folder:
        state = TrainState(context.topic, {})
        checkpointer = Checkpointer(Path(folder), state, every_seconds=0,
                                    batches_per_epoch=-(-len(labels) // BATCH),
                                    stop=threading.Event())
        started = time.perf_counter()
        model.fit(features, labels, batch_size=BATCH, epochs=1, shuffle=True, verbose=0,
                  callbacks=[checkpointer])
        return {"checkpoint_every_batch_epoch_s": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="Kafka address (default: start a local broker)")
    parser.add_argument("--rows", type=int, default=60_000, help="records (tutorial: 60,000)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument("--output", type=Path, default=Path("bench-results.json"),
                        help="where to write the JSON figures")
    arguments = parser.parse_args(argv)
    for module in EXTRA_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    console = Console()
    if arguments.bootstrap is None:
        return measure_on_own_broker(argv or sys.argv[1:], arguments.output, console)
    console.print(f"writing {arguments.rows:,} rows to Kafka at {arguments.bootstrap} ...")
    context = prepare(arguments.bootstrap, arguments.rows, arguments.seed)
    run(context, console)
    path = report(context, console, arguments.output)
    console.print(str(path.resolve()))
    return 0


def measure_on_own_broker(argv: list[str], output: Path, console: Console) -> int:
    """Start a broker, measure in a child process against it, stop the broker.

    tensorflow-io's Kafka readers crash their process when their broker goes
    away, so the process that reads (the child, which runs every measurement)
    exits while the broker still runs, and this one stops the broker after.
    """
    with broker(None) as bootstrap:
        code = subprocess.call(
            [sys.executable, "-m", "bench.input_pipeline", *argv,
             "--bootstrap", bootstrap, "--output", str(output.resolve())],
            cwd=Path(__file__).resolve().parent.parent)
    if code == 0:
        console.print(str(output.resolve()))
    return code


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # tensorflow-io's Kafka readers cannot be torn down safely at interpreter exit;
    # everything is written, so leave now.
    os._exit(code)
