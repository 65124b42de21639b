"""The main job: TensorFlow's Kafka tutorial, end to end, on a local broker.

100,000 synthetic SUSY-like rows split 60,000 / 40,000 into `susy-train`
(1 partition) and `susy-test` (2 partitions); 10 epochs of the tutorial's
network; exactly-once evaluation with consumer group `testcg`; then online
learning on 20,000 newly arriving rows, while the trained model serves the
test topic into `susy-predictions`, exactly once, until it has been idle for
5 s. Prints test accuracy and AUC next to the best accuracy any model could
reach on this data, records/s per phase, the first predictions served and
wall time, and leaves the model, results and plots in one folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import yaml
from rich.console import Console

from workload.artifacts import Artifacts, write_json_atomic
from workload.kafka.connection import KafkaConnection
from workload.spec import load_job_file
from workload.status import PodReport

PREDICTIONS_SHOWN = 5
"""Predictions the demo prints at its end."""

ONLINE_ROWS = 20_000
"""Rows that arrive after training, for the online phase."""

DEMO_JOB = """\
apiVersion: streamtrain.dev/v1alpha1
kind: StreamingTrainingJob
metadata:
  name: susy-demo
spec:
  kafka:
    bootstrapServers: BOOTSTRAP
  data: {format: csv, features: 18, label: key}
  train: {topic: susy-train, epochs: 10, batchSize: 64, shuffleBuffer: 64}
  evaluate: {topic: susy-test, consumerGroup: testcg, streamTimeoutMs: 10000}
  online: {topic: susy-online, consumerGroup: cgonline, streamTimeoutMs: 5000}
  serve: {inputTopic: susy-test, outputTopic: susy-predictions, consumerGroup: cgserve, streamTimeoutMs: 5000}
  model:
    layers:
      - {dense: 128, activation: relu}
      - {dropout: 0.2}
      - {dense: 256, activation: relu}
      - {dropout: 0.4}
      - {dense: 128, activation: relu}
      - {dropout: 0.4}
    optimizer: adam
    output: {path: OUTPUT}
"""


def demo_job_yaml(bootstrap_servers: str, output: Path, registry_url: str | None = None) -> str:
    """The demo's job manifest, bound to a broker and an output folder; with `registry_url`,
    Avro records (as `streamtrain produce --format avro` writes them) instead of CSV."""
    job = DEMO_JOB.replace("BOOTSTRAP", bootstrap_servers).replace("OUTPUT", str(output))
    if registry_url is None:
        return job
    from workload.datagen.table import SUSY_COLUMNS

    avro = (f"{{format: avro, columns: [{', '.join(SUSY_COLUMNS)}], label: key, "
            f"schemaRegistry: {{url: '{registry_url}'}}}}")
    return job.replace("{format: csv, features: 18, label: key}", avro)


def run_demo(output: Path, rows: int = 100_000, bootstrap_servers: str | None = None,
             data_format: str = "csv") -> bool:
    """Run the demo; `True` when every phase succeeded. `data_format: avro` writes and reads
    Avro through a local schema registry, started (and fetched, the first time) for the demo."""
    from workload import tflog

    tflog.quiet()
    console = Console()
    started = time.perf_counter()
    output = output.resolve()
    if (output / "job.yaml").exists():
        # A previous demo's folder: its evaluation ledger belongs to another model.
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    broker = None
    if bootstrap_servers is None:
        from localparts import kafka as local_kafka

        console.print("[bold]Starting a local Apache Kafka broker[/bold]")
        broker = local_kafka.start(output / "kafka")
        bootstrap_servers = broker.bootstrap_servers
    registry = None
    try:
        if data_format == "avro":
            from localparts import registry as local_registry

            console.print("[bold]Starting a local schema registry (Apicurio Registry "
                          f"{local_registry.APICURIO_VERSION})[/bold]")
            registry = local_registry.start(output / "registry")
        return _demo(console, output, rows, bootstrap_servers, started,
                     registry.url if registry is not None else None)
    finally:
        if registry is not None:
            registry.stop()
        if broker is not None:
            # Stopped without waiting: see workload.cli._finish for why the
            # process must not linger while tensorflow-io's clients lose their broker.
            os.killpg(broker.process.pid, signal.SIGTERM)


def _demo(console: Console, output: Path, rows: int, bootstrap_servers: str,
          started: float, registry_url: str | None) -> bool:
    from workload.datagen.produce import produce_split, register_schemas
    from workload.datagen.records import encode
    from workload.datagen.synthetic import bayes_optimal_accuracy, generate
    from workload.kafka.producer import produce_messages
    from workload.report_table import render_reports
    from workload.runner import results_document, run_phases

    connection = KafkaConnection(bootstrap_servers)
    job_yaml = demo_job_yaml(bootstrap_servers, output, registry_url)
    (output / "job.yaml").write_text(job_yaml)
    name, spec = load_job_file(job_yaml)

    console.print(f"[bold]Producing {rows:,} synthetic SUSY-like rows[/bold] to {bootstrap_servers}")
    data = generate(rows, seed=0)
    produced = produce_split(connection, "susy-train", "susy-test", data,
                             train_rows=int(rows * 0.6), train_partitions=1, test_partitions=2,
                             data_spec=spec.data)
    online_rows = generate(ONLINE_ROWS, seed=1)
    online_id = (register_schemas(spec.data, "susy-online")[0] if spec.data.format == "avro"
                 else None)
    produce_messages(connection, "susy-online", encode(online_rows, spec.data, online_id),
                     partitions=1)
    bayes, bayes_error = bayes_optimal_accuracy()

    artifacts = Artifacts(output)
    reports = run_phases(name, spec, connection, artifacts)
    render_reports(reports, console, title=f"{name}: {rows:,} rows, {spec.train.epochs if spec.train else 0} epochs")

    evaluation = next((report.metrics for report in reports if report.mode == "evaluate"), None)
    accuracy = evaluation.eval_accuracy if evaluation else None
    auc = evaluation.eval_auc if evaluation else None
    wall = time.perf_counter() - started
    summary = results_document(
        name,
        reports,
        bootstrapServers=bootstrap_servers,
        rows=rows,
        produceRecordsPerSecond=round(produced.records_per_second),
        bayesOptimalAccuracy=round(bayes, 4),
        bayesOptimalAccuracyStandardError=round(bayes_error, 5),
        testAccuracy=accuracy,
        testAUC=auc,
        gapToBayesPoints=None if accuracy is None else round(100 * (bayes - accuracy), 2),
        wallSeconds=round(wall, 1),
    )
    write_json_atomic(artifacts.summary, summary)
    (output / "results.yaml").write_text(yaml.safe_dump(summary, sort_keys=False))

    if accuracy is not None:
        console.print(f"test accuracy [bold]{100 * accuracy:.2f}%[/bold], "
                      f"AUC {auc or 0:.4f}; "
                      f"Bayes-optimal accuracy of this data {100 * bayes:.2f}% "
                      f"(± {100 * bayes_error:.2f}); gap {summary['gapToBayesPoints']} points")
    _show_predictions(console, connection, reports)
    console.print(f"produce {produced.records_per_second:,.0f} records/s; wall time {wall:.0f} s")
    console.print(f"model, results.json and training_curve.png are in {output}")
    return bool(summary["ok"])


def _show_predictions(console: Console, connection: KafkaConnection,
                      reports: list[PodReport]) -> None:
    """What serving wrote: how many predictions, and the first few as a consumer reads them."""
    served = next((report for report in reports if report.mode == "serve"), None)
    if served is None or not served.ok:
        return
    from rich.table import Table

    from workload.kafka.peek import first_committed

    table = Table(title=f"served: {served.metrics.records_served:,} predictions in "
                        f"susy-predictions (the first {PREDICTIONS_SHOWN}, read_committed)")
    for column in ("key", "class", "P(class 1)", "model version", "input partition/offset"):
        table.add_column(column)
    for message in first_committed(connection, "susy-predictions", PREDICTIONS_SHOWN):
        value = json.loads(message.value() or b"{}")
        prediction = value.get("prediction", {})
        table.add_row((message.key() or b"").decode(errors="replace"),
                      str(prediction.get("class")),
                      f"{prediction.get('probabilities', {}).get('1', 0):.4f}",
                      str(value.get("modelVersion")),
                      f"{value.get('partition')}/{value.get('offset')}")
    console.print(table)
