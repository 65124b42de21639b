"""Scenario: malformed records of every kind in the topics that train and evaluate read.

At 1% (`corrupt` makes each reason in turn) both modes succeed, count every
bad record by reason in the pod's termination message (which the operator
copies into `status.metrics`), score or train on none of them, and send each
to the dead-letter topic with its reason. At 30% both fail as
`TooManyBadRecords` (a failure no retry fixes: the pod's exit code makes its
Job start no other pod) with a message that says how many records were
malformed, why, and which setting was exceeded.

Runs in the calling process (tensorflow-io included), so `bootstrap` must
be a broker that stays up while the process lives.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from kafka import KafkaConsumer

from tests.faults.figures import Figure, figure
from tests.integration.modes_support import fill_topic, job_spec, save_tiny_model
from workload.artifacts import Artifacts
from workload.kafka.connection import KafkaConnection
from workload.kafka.dead_letter import REASON_HEADER
from workload.modes.evaluate import run_evaluate
from workload.modes.train import run_train
from workload.spec import StreamingTrainingJobSpec
from workload.status import PodReport

SCENARIO = "bad input records"


def dead_letter_reasons(bootstrap: str, topic: str) -> Counter[str]:
    """How many records the dead-letter topic holds, by their reason header."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=1500)
    try:
        return Counter(dict(record.headers)[REASON_HEADER].decode() for record in consumer)
    finally:
        consumer.close()


def malformed_records(bootstrap: str, work: Path, rows: int = 5000, seed: int = 61,
                      prefix: str = "faults") -> list[Figure]:
    """Run train and evaluate on 1% and on 30% malformed records; return the figures."""
    connection = KafkaConnection(bootstrap)
    figures: list[Figure] = []
    for fraction in (0.01, 0.30):
        percent = round(fraction * 100)
        topic = f"{prefix}-bad-{percent}-{work.name[-12:]}"
        data, _, made = fill_topic(bootstrap, topic, rows, seed=seed + percent, partitions=2,
                                   bad_fraction=fraction)
        expected = {reason: count for reason, count in sorted(made.items()) if count}
        artifacts = Artifacts(work / f"bad-{percent}").prepare()
        save_tiny_model(artifacts.keras_model, data=data)
        for mode in ("train", "evaluate"):
            dead = f"{topic}-{mode}-dead"
            spec = _spec(bootstrap, artifacts, topic, mode, dead)
            report = (run_train(mode, spec, connection, artifacts, progress=False)
                      if mode == "train" else
                      run_evaluate(mode, spec, connection, artifacts, progress=False))
            if fraction < 0.05:
                figures += _tolerated(mode, report, expected, rows,
                                      dead_letter_reasons(bootstrap, dead))
            else:
                figures.append(_refused(mode, report, expected, rows))
    return figures


def _spec(bootstrap: str, artifacts: Artifacts, topic: str, mode: str,
          dead: str) -> StreamingTrainingJobSpec:
    data = {"deadLetterTopic": dead}
    if mode == "train":
        return job_spec(bootstrap, artifacts.root, data=data,
                        train={"topic": topic, "epochs": 1, "batchSize": 256})
    return job_spec(bootstrap, artifacts.root, data=data,
                    evaluate={"topic": topic, "consumerGroup": f"{topic}-cg",
                              "streamTimeoutMs": 0})


def _tolerated(mode: str, report: PodReport, expected: dict[str, int], rows: int,
               dead: Counter[str]) -> list[Figure]:
    bad = sum(expected.values())
    delivered = PodReport.from_message(report.to_message())  # what the operator reads
    counted = (delivered.metrics.bad_records_by_reason if delivered else None) or {}
    metrics = report.metrics
    used = ((metrics.records_trained or 0) + (metrics.records_validated or 0) if mode == "train"
            else metrics.records_evaluated)
    name = f"{mode}, 1% malformed ({bad} of {rows})"
    dead_by_reason = dict(sorted(dead.items()))
    return [
        figure(SCENARIO, f"{name}: outcome", "succeeds", "ok" if report.ok else report.message,
               report.ok),
        figure(SCENARIO, f"{name}: bad records by reason in the termination message",
               str(expected),
               counted, counted == expected),
        figure(SCENARIO, f"{name}: records {'trained on or validated' if mode == 'train' else 'scored'}",
               f"{rows - bad} (none malformed)", used, used == rows - bad),
        figure(SCENARIO, f"{name}: dead-letter topic by reason", str(expected), dead_by_reason,
               dead_by_reason == expected),
    ]


def _refused(mode: str, report: PodReport, expected: dict[str, int], rows: int) -> Figure:
    bad = sum(expected.values())
    words = [f"{bad} of {rows} records", "maxBadRecordsRatio"]
    words += [f"{reason}{': ' if mode == 'train' else ' '}{count}"
              for reason, count in expected.items()]
    clear = not report.ok and all(word in report.message for word in words)
    permanent = report.reason == "TooManyBadRecords"  # the pod exits 7: the Job retries no pod
    return figure(SCENARIO, f"{mode}, 30% malformed ({bad} of {rows}): outcome",
                  "fails as TooManyBadRecords (not retried); message gives count, each reason, "
                  "the setting",
                  f"{report.reason}: {report.message}" if not report.ok else "ok (not refused)",
                  clear and permanent)
