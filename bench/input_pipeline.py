"""Benchmark: the Kafka tutorial's pipeline against streamtrain's, on the same rows.

Run `python -m bench.input_pipeline [--rows N] [--test-rows N]` (`make
bench`). Two local brokers are started for the run: Kafka 4 (what the
default librdkafka client reads) and Kafka 3.9 (the newest the tutorial's
tensorflow-io reader can read; every `seed_*` figure is measured there, by
`bench.tutorial` in the tensorflow-io set's environment, TensorFlow 2.16:
`--tutorial-python`). Figures (one training topic of one partition, the
tutorial's layout):

- `produce_rps`: `streamtrain produce` of every row (train and test topics,
  topic creation and end-offset verification included); `produce_send_rps`
  the sending alone;
- `librdkafka_raw_rps`: the limit: confluent-kafka `consume(num_messages)`
  of the training topic into a list of values, nothing else;
  `kafka_python_rps` the same with kafka-python;
- `seed_input_rps`, `input_rps`: records per second from Kafka to decoded
  batches, no model (the tutorial's `from_kafka` pipeline; train mode's
  reader and batch decoding); the better of two passes (`json_input_rps`,
  the same rows as JSON, and the decoders alone come from `bench.decoding`);
- `seed_train_epoch_s`: the tutorial's pipeline (`from_kafka` partition 0,
  shuffle 64, per-record `decode_csv`, batch 64), one epoch of the tutorial
  model; `seed_eval_rps` its evaluation (all three from `bench.tutorial`);
- `train_epoch_s`: train mode's pipeline at batch 64 (the reader, batch
  decoding, the in-memory cache, shuffle 64, train mode's own training loop
  of one trainer, `workload.modes.train_loop`): the wall time of a run of the
  tutorial's 10 epochs, Kafka read included, divided by 10. The 10 epochs are
  one call of the loop, as in a trainer: its step is traced once, inside the
  first epoch (a call per epoch would trace it anew each time, about 0.5 s
  that no run pays). The tutorial re-reads Kafka every epoch, so its 10-epoch
  average is its one epoch. `train_first_epoch_s` (read + trace + one epoch)
  and `train_cached_epoch_s` (the later epochs' average) show the two parts;
- `compute_epoch_s`: the same model and batch size on in-memory arrays with
  Keras' `fit`, in a clean process of its own (`bench.compute`);
  `checkpoint_every_batch_epoch_s` the same with a checkpoint after every
  batch (`train.checkpointEverySeconds: 0`): what a replay of at most one
  batch after a SIGKILL costs.

Every model is built the same way and Keras' training step compiled before
the clock starts, so a `fit` figure times only the epoch; train mode's own
step is traced inside the timed run, once, as a trainer traces it. Evaluation figures come from
`bench.eval_pipeline`, 1 against 2 training workers and evaluators from
`bench.scaleout`.
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
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402
from confluent_kafka import TopicPartition as LibrdkafkaPartition  # noqa: E402
from kafka import KafkaConsumer, TopicPartition  # noqa: E402
from rich.console import Console  # noqa: E402

from bench.compute import BATCH, tutorial_model  # noqa: E402
from bench.harness import (  # noqa: E402
    TARGETS,
    BenchContext,
    Target,
    best_rate,
    brokers,
    measurement,
    prepare,
    report,
    run,
)
from localparts.cache import cache_root  # noqa: E402
from workload.kafka.bounds import partition_bounds  # noqa: E402
from workload.modes.checkpoint import Checkpointer, TrainState  # noqa: E402
from workload.modes.group import Group  # noqa: E402
from workload.modes.train_data import (  # noqa: E402
    ReadSummary,
    decoded_batches,
    read_all,
    training_rows,
)
from workload.modes.train_loop import Plan, train_epochs  # noqa: E402
from workload.modes.train_progress import TrainProgress  # noqa: E402
from workload.spec import DataSpec, StreamingTrainingJobSpec  # noqa: E402

EPOCHS = 10
"""The tutorial's epochs."""

RAW_BATCH = 10_000
"""Records per `consume` call of the raw baselines."""

EXTRA_MODULES = ("bench.eval_pipeline", "bench.decoding", "bench.avro_decoding", "bench.scaleout",
                 "bench.serving")
"""Modules that register more measurements, imported when present."""

TARGETS.extend([
    Target("produce_rps", None, 100_000),
    Target("train_epoch_s", "compute_epoch_s", 1.25, upper=True),
    Target("input_rps", "seed_input_rps", 30.0),
    Target("input_rps", "librdkafka_raw_rps", 0.7),
])


class ClockedCheckpointer(Checkpointer):
    """The checkpointer of a run, noting when each epoch begins (`time.perf_counter` seconds):
    the loop calls `begin_epoch` once per epoch, so no per-batch hook is added to what is
    timed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.began: list[float] = []

    def begin_epoch(self, skipped: int) -> None:
        self.began.append(time.perf_counter())
        super().begin_epoch(skipped)


def timed_run(model: keras.Model, rows: tf.data.Dataset, spec: StreamingTrainingJobSpec,
              folder: Path) -> tuple[float, float]:
    """Seconds of the tutorial's epochs of `model` over `rows` in train mode's own loop, run
    as a trainer runs it (one trainer: a group of one; one `train_epochs` call, so its step is
    traced once, in the first epoch), checkpointing only at each epoch's end: (the first
    epoch, the later epochs' average)."""
    assert spec.train is not None
    records = int(rows.cardinality())
    steps = -(-records // spec.train.batch_size)
    checkpointer = ClockedCheckpointer(folder, TrainState("bench", {}), 86400, steps,
                                       threading.Event())
    checkpointer.set_model(model)
    plan = Plan(steps, records, spec.train.batch_size)
    run = spec.model_copy(update={"train": spec.train.model_copy(update={"epochs": EPOCHS})})
    started = time.perf_counter()
    train_epochs(model, rows, None, run, checkpointer.state, Group.solo(), checkpointer, plan)
    ended = time.perf_counter()
    second = checkpointer.began[1]
    return second - started, (ended - second) / (EPOCHS - 1)


@measurement("the tutorial's pipeline: input, a training epoch, evaluation (TF 2.16, Kafka 3.9)")
def tutorial(context: BenchContext) -> dict[str, float]:
    """`bench.tutorial` in the tensorflow-io set's environment, on the same rows."""
    python = context.tutorial_python
    if not Path(python).exists():
        raise RuntimeError(f"{python} does not exist: the tutorial's baselines run in the "
                           "tensorflow-io set's environment (make setup-tfio creates it)")
    completed = subprocess.run(
        [python, "-m", "bench.tutorial", "--bootstrap",
         context.compat_connection.bootstrap_servers, "--topic", context.topic,
         "--test-topic", context.test_topic, "--test-records", str(context.test_records)],
        capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parent.parent)
    if completed.returncode != 0:
        raise RuntimeError(f"bench.tutorial failed (exit {completed.returncode}):\n"
                           f"{completed.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures


@measurement("streamtrain's input pipeline")
def fast_input(context: BenchContext) -> dict[str, float]:
    data = DataSpec()
    offsets = partition_bounds(context.connection, context.topic)

    def decoded() -> int:
        return sum(len(batch.labels) for _, _, batch in
                   decoded_batches(context.connection, context.topic, offsets, data))

    return {"input_rps": best_rate(decoded)}


@measurement("librdkafka alone: consume(num_messages) into a list")
def librdkafka_raw(context: BenchContext) -> dict[str, float]:
    wanted = len(context.messages)

    def consume() -> int:
        consumer = Consumer(context.connection.librdkafka_config(
            owned={"group.id": "bench-raw", "enable.auto.commit": False}))
        consumer.assign([LibrdkafkaPartition(context.topic, 0, 0)])
        values: list[bytes | None] = []
        while len(values) < wanted:
            values += [message.value() for message in
                       consumer.consume(num_messages=RAW_BATCH, timeout=1.0)]
        consumer.close()
        return len(values)

    return {"librdkafka_raw_rps": best_rate(consume)}


@measurement("kafka-python alone: poll into a list")
def kafka_python_raw(context: BenchContext) -> dict[str, float]:
    wanted = len(context.messages)

    def consume() -> int:
        consumer = KafkaConsumer(**context.connection.kafka_python_settings(),
                                 enable_auto_commit=False, max_poll_records=RAW_BATCH)
        partition = TopicPartition(context.topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        values: list[bytes] = []
        while len(values) < wanted:
            for records in consumer.poll(timeout_ms=1000).values():
                values += [record.value for record in records]
        consumer.close()
        return len(values)

    return {"kafka_python_rps": best_rate(consume)}


@measurement("streamtrain's training epoch")
def fast_train(context: BenchContext) -> dict[str, float]:
    spec = StreamingTrainingJobSpec.model_validate({
        "kafka": {"bootstrapServers": context.connection.bootstrap_servers},
        "train": {"topic": context.topic, "batchSize": BATCH, "shuffleBuffer": BATCH},
    })
    model = tutorial_model()
    offsets = partition_bounds(context.connection, context.topic)
    started = time.perf_counter()
    with TrainProgress(False) as display:
        summary: ReadSummary = read_all(
            context.connection, context.topic, offsets, spec.data, True, display)
    rows = training_rows(summary, context.connection, context.topic, offsets, spec.data, True)
    read_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="streamtrain-bench-loop-") as folder:
        first_epoch, later = timed_run(model, rows, spec, Path(folder))
    return {"train_epoch_s": (read_seconds + first_epoch + later * (EPOCHS - 1)) / EPOCHS,
            "train_first_epoch_s": read_seconds + first_epoch,
            "train_read_s": read_seconds,
            "train_cached_epoch_s": later}


@measurement("the model on in-memory arrays, in a clean process")
def compute(context: BenchContext) -> dict[str, float]:
    rows = len(context.messages)
    output = subprocess.run(
        [sys.executable, "-m", "bench.compute", str(rows), str(rows + context.test_records),
         str(context.seed)],
        check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    figures: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    return figures


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
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--compat-bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=60_000,
                        help="training records (tutorial: 60,000)")
    parser.add_argument("--test-rows", type=int, default=200_000,
                        help="test records (the evaluation figures)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument("--output", type=Path, default=Path("bench-results.json"),
                        help="where to write the JSON figures")
    parser.add_argument("--tutorial-python", default=str(cache_root() / "venv-tfio" / "bin" / "python"),
                        help="the Python of the tensorflow-io set's environment, where the "
                             "tutorial's baselines run (default: <cache>/venv-tfio, make setup-tfio)")
    parser.add_argument("--only", nargs="*", default=[],
                        help="measurements to run, by function name (e.g. replicas)")
    arguments = parser.parse_args(argv)
    for module in EXTRA_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    console = Console()
    if arguments.bootstrap is None:
        return measure_on_own_broker(argv or sys.argv[1:], arguments.output, console)
    console.print(f"writing {arguments.rows:,} + {arguments.test_rows:,} rows to Kafka at "
                  f"{arguments.bootstrap} and {arguments.compat_bootstrap} ...")
    context = prepare(arguments.bootstrap, arguments.compat_bootstrap, arguments.rows,
                      arguments.test_rows, arguments.seed, arguments.tutorial_python)
    run(context, console, arguments.only)
    path = report(context, console, arguments.output)
    console.print(str(path.resolve()))
    return 0


def measure_on_own_broker(argv: list[str], output: Path, console: Console) -> int:
    """Start the brokers, measure in a child process against them, stop the brokers.

    tensorflow-io's Kafka readers (the tutorial's baselines) crash their process
    when their broker goes away, so the processes that read (the children)
    exit while the brokers still run, and this one stops them after.
    """
    with brokers() as (bootstrap, compat):
        code = subprocess.call(
            [sys.executable, "-m", "bench.input_pipeline", *argv, "--bootstrap", bootstrap,
             "--compat-bootstrap", compat, "--output", str(output.resolve())],
            cwd=Path(__file__).resolve().parent.parent)
    if code == 0:
        console.print(str(output.resolve()))
    return code


if __name__ == "__main__":
    sys.exit(main())
