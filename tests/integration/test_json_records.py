"""JSON records written by another client, with junk, through train and evaluate on the real broker.

kafka-python's producer (not this project's) writes nested JSON objects and
about 1% junk, every JSON reason in turn; train and evaluate must count each
reason exactly, learn and score only the good records, and send each bad one
to the dead-letter topic with its reason (and, for `missing_field`, the column).
"""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

from kafka import KafkaConsumer  # noqa: E402

from tests.conftest import KafkaHandle  # noqa: E402
from workload.artifacts import Artifacts  # noqa: E402
from workload.datagen.records import Message, applicable_reasons, corrupt, encode  # noqa: E402
from workload.datagen.synthetic import generate  # noqa: E402
from workload.datagen.table import SUSY_COLUMNS, split  # noqa: E402
from workload.kafka.connection import KafkaConnection  # noqa: E402
from workload.kafka.dead_letter import FIELD_HEADER, REASON_HEADER  # noqa: E402
from workload.modes.evaluate import run_evaluate  # noqa: E402
from workload.modes.train import run_train  # noqa: E402
from workload.spec import DataSpec, StreamingTrainingJobSpec  # noqa: E402

DATA = {"format": "json", "label": "label", "maxRecordBytes": 4096,
        "columns": [f"event.{name}" for name in SUSY_COLUMNS] + ["label"]}
"""Each record: `{"event": {"lepton1_pt": ..., ...}, "label": 0|1}`."""


def produce(kafka: KafkaHandle, topic: str, messages: list[Message], partitions: int) -> None:
    """Write `messages` round-robin over the partitions with kafka-python's producer."""
    producer = kafka.producer(acks="all")
    for index, message in enumerate(messages):
        producer.send(topic, key=message.key, value=message.value, partition=index % partitions)
    producer.flush()
    producer.close()


def dead_letters(kafka: KafkaHandle, topic: str) -> Counter[tuple[str, str | None]]:
    """(reason, field) of every record in the dead-letter topic."""
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    found: Counter[tuple[str, str | None]] = Counter()
    for record in consumer:
        headers = {name: value.decode() for name, value in record.headers}
        found[headers[REASON_HEADER], headers.get(FIELD_HEADER)] += 1
    consumer.close()
    return found


def test_json_with_junk_from_another_client_is_counted_exactly_in_train_and_evaluate(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    data = DataSpec.model_validate(DATA)
    train_rows, test_rows = split(generate(5000, seed=11), 3000)
    train, train_made = corrupt(encode(train_rows, data), 0.012, seed=12, spec=data)
    test, test_made = corrupt(encode(test_rows, data), 0.012, seed=13, spec=data)
    train_topic = kafka.create_topic("json-train", partitions=3)
    test_topic = kafka.create_topic("json-test", partitions=2)
    produce(kafka, train_topic, train, 3)
    produce(kafka, test_topic, test, 2)
    dead = f"{train_topic}-dead"
    spec = StreamingTrainingJobSpec.model_validate({
        "kafka": {"bootstrapServers": kafka.bootstrap_servers},
        "data": {**DATA, "deadLetterTopic": dead},
        "train": {"topic": train_topic, "epochs": 2, "batchSize": 64, "cache": False},
        "evaluate": {"topic": test_topic, "consumerGroup": f"json-{uuid.uuid4().hex[:8]}",
                     "streamTimeoutMs": 0},
        "model": {"layers": [{"dense": 16}]},
    })
    connection = KafkaConnection(kafka.bootstrap_servers)
    artifacts = Artifacts(tmp_path)

    trained = run_train("json", spec, connection, artifacts, progress=False)

    assert set(train_made) == set(applicable_reasons(data)) and all(train_made.values())
    assert trained.ok, trained.message
    assert trained.metrics.bad_records_by_reason == train_made
    # Good records are either trained on or held out for validation, each once.
    trained_on, validated = trained.metrics.records_trained, trained.metrics.records_validated
    assert trained_on and validated and trained_on + validated == 3000 - sum(train_made.values())
    last_column = data.record_columns[-1]
    assert dead_letters(kafka, dead) == Counter(
        {(reason, last_column if reason == "missing_field" else None): count
         for reason, count in train_made.items()})

    evaluated = run_evaluate("json", spec, connection, artifacts, progress=False)

    assert evaluated.ok, evaluated.message
    assert evaluated.metrics.bad_records_by_reason == test_made
    assert evaluated.metrics.records_evaluated == 2000 - sum(test_made.values())
    assert evaluated.metrics.eval_accuracy is not None and evaluated.metrics.eval_accuracy > 0.6
    assert sum(dead_letters(kafka, dead).values()) == sum(train_made.values()) + sum(
        test_made.values())
