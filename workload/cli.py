"""`streamtrain`: the workload's command line.

    streamtrain kafka up|down|status       a local Apache Kafka broker (for demos and tests)
    streamtrain produce                    write a synthetic (or real SUSY) train/test split
    streamtrain run JOB.yaml               train -> evaluate -> online, locally, from a job manifest
                                           (artefacts in ./streamtrain-output/JOB/)
    streamtrain run-mode MODE              one phase inside a pod (spec from the environment)
    streamtrain demo                       the Kafka tutorial end to end on a local broker

Exit code 0 on success, 1 when a phase fails, 2 for a bad spec or arguments. `run-mode` exits
with the code of its failure's reason when no retry can fix it (`contract.PERMANENT_FAILURES`:
Kafka unreachable or refusing the login, a missing topic, too many bad records, a model of
another shape, ...), on which the child Job starts no other pod.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from workload.artifacts import write_json_atomic
from workload.contract import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, MODES, exit_code_for
from workload.kafka.connection import KafkaConnection, connection_for
from workload.spec import DataSpec, SpecError, load_job_file
from workload.status import PodReport


def _finish(code: int) -> int:
    """Leave without interpreter teardown once results are written.

    tensorflow-io never frees its librdkafka handles; at teardown their
    threads can call into freed objects and crash the process, which would
    turn a finished phase into a failed pod. Everything is flushed first.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if "tensorflow" in sys.modules:
        os._exit(code)
    return code


def _print_reports(reports: list[PodReport]) -> None:
    from workload.report_table import render_reports

    render_reports(reports)


LOCAL_OUTPUT = Path("streamtrain-output")
"""Where `streamtrain run` writes, one folder per job, unless `--output-dir` says otherwise."""


def command_run(arguments: argparse.Namespace) -> int:
    """Run a job manifest's phases locally, every artefact in one local folder.

    `spec.model.output.path` is where a pod mounts its volume: it is not used
    here, so a job written for a cluster runs unchanged on a laptop.
    """
    from workload.runner import local_folders, results_document, run_phases

    # A user's model factory is imported from the current folder too, as `python -m` would.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        name, spec = load_job_file(Path(arguments.job).read_text())
    except (OSError, SpecError) as error:
        print(f"error: {arguments.job}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    connection = connection_for(spec.kafka)
    if arguments.bootstrap_servers:
        connection = KafkaConnection(arguments.bootstrap_servers, connection.settings)
    output = Path(arguments.output_dir) if arguments.output_dir else LOCAL_OUTPUT / name
    try:
        artifacts = local_folders(spec, output.absolute(),
                                  Path(arguments.source_dir) if arguments.source_dir else None)
    except ValueError as error:
        print(f"error: {arguments.job}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    reports = run_phases(name, spec, connection, artifacts, progress=not arguments.quiet)
    _print_reports(reports)
    document = results_document(name, reports, outputDir=str(artifacts.root))
    write_json_atomic(artifacts.summary, document)
    print(f"artefacts in {artifacts.root}:")
    for what, path in artifacts.inventory():
        print(f"  {what:20} {path.relative_to(artifacts.root)}")
    return EXIT_OK if document["ok"] else EXIT_FAILED


def command_run_mode(arguments: argparse.Namespace) -> int:
    """Run one phase in a pod (one replica of it): spec and replica from the environment,
    report to the termination log. A worker whose group lost a peer exits `PEER_LOST_EXIT`."""
    from workload.contract import JOB_UID_ENV, PEER_LOST_EXIT
    from workload.progress import channel as live_progress
    from workload.replica import PeerLost, replica_for
    from workload.runner import output_folder, run_mode, spec_from_environment
    from workload.termination import write_termination_message

    try:
        name, spec = spec_from_environment()
        connection = connection_for(spec.kafka)
        replica = replica_for(arguments.mode, spec, os.environ)
    except (ValueError, SpecError) as error:
        report = PodReport(mode=arguments.mode, ok=False, message=str(error), reason="InvalidSpec")
        write_termination_message(report)
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    artifacts = output_folder(spec, Path(arguments.output_dir) if arguments.output_dir else None)
    try:
        # Replica 0 speaks for its phase, live too (the figures of the whole group).
        with live_progress(arguments.mode) if replica.chief else contextlib.nullcontext():
            report = run_mode(arguments.mode, name, spec, connection, artifacts, progress=False,
                              job_uid=os.environ.get(JOB_UID_ENV) or None, replica=replica)
    except PeerLost as lost:
        report = PodReport(mode=arguments.mode, ok=False, message=str(lost))
        write_termination_message(report)
        print(report.to_message())
        return PEER_LOST_EXIT
    write_termination_message(report)
    print(report.to_message())
    return exit_code_for(report.ok, report.reason)


def command_produce(arguments: argparse.Namespace) -> int:
    """Write a train/test split into two topics."""
    from workload.datagen.produce import produce_split

    bootstrap = arguments.bootstrap_servers or _local_bootstrap()
    if arguments.susy:
        from workload.datagen.susy import load_susy

        data = load_susy(Path(arguments.susy), rows=arguments.rows)
        layout = DataSpec(features=len(data.columns))
    else:
        from workload.datagen.families import FAMILIES, data_spec

        family = FAMILIES[arguments.family]
        data, layout = family.generate(arguments.rows, seed=arguments.seed), data_spec(family)
    layout = produce_layout(arguments, layout, list(data.columns))
    report = produce_split(
        KafkaConnection(bootstrap), arguments.train_topic, arguments.test_topic, data,
        train_rows=int(data.rows * arguments.train_fraction),
        train_partitions=arguments.train_partitions, test_partitions=arguments.test_partitions,
        data_spec=layout, progress=not arguments.quiet)
    written = layout.model_dump(by_alias=True, exclude_defaults=True)
    print(f"wrote {report.records} records ({report.train.records} to {arguments.train_topic}, "
          f"{report.test.records} to {arguments.test_topic}) at "
          f"{report.records_per_second:,.0f} records/s; the job's data section: "
          f"{json.dumps(written or {'features': len(data.columns)})}")
    return EXIT_OK


def produce_layout(arguments: argparse.Namespace, layout: DataSpec, columns: list[str]
                   ) -> DataSpec:
    """What `streamtrain produce` writes: the data's own layout, or with `--format avro` Avro
    values whose fields are the data's `columns` (the label in the key, as for the tutorial's
    CSV), schemas in `--schema-registry`. Avro is written for the tutorial's layout only
    (numbers and a 0/1 label): a family with categorical fields or another task keeps its own."""
    if arguments.format == "csv":
        return layout
    if not arguments.schema_registry:
        raise SystemExit("error: --format avro needs --schema-registry URL (e.g. "
                         "`streamtrain-local registry up` prints one)")
    if layout != DataSpec(features=layout.features):
        raise SystemExit(f"error: --format avro writes binary families of numbers only; family "
                         f"{arguments.family!r} is laid out as {layout.format} with "
                         "categorical fields or another task: produce it without --format")
    return DataSpec.model_validate({"format": "avro", "columns": columns,
                                    "label": "key",
                                    "schemaRegistry": {"url": arguments.schema_registry}})


def _local_bootstrap() -> str:
    from localparts import kafka as local_kafka

    bootstrap = local_kafka.bootstrap_from_environment()
    if not bootstrap:
        raise SystemExit("error: no --bootstrap-servers given and no local broker running "
                         "(start one with `streamtrain kafka up`)")
    return bootstrap


def command_kafka(arguments: argparse.Namespace) -> int:
    """Start, stop or show the local broker."""
    from localparts.cli import main as local_main

    return local_main(["kafka", arguments.action])


def command_demo(arguments: argparse.Namespace) -> int:
    """The tutorial end to end on a local broker."""
    from workload.demo import run_demo

    return EXIT_OK if run_demo(Path(arguments.output), rows=arguments.rows,
                               bootstrap_servers=arguments.bootstrap_servers,
                               data_format=arguments.format) else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    """The command line of `streamtrain`."""
    from workload.datagen.families import FAMILIES

    parser = argparse.ArgumentParser(prog="streamtrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    kafka = commands.add_parser("kafka", help="a local Apache Kafka broker")
    kafka.add_argument("action", choices=["up", "down", "status"])
    kafka.set_defaults(handler=command_kafka)

    produce = commands.add_parser("produce", help="write a train/test split into Kafka")
    produce.add_argument("--bootstrap-servers", help="host:port (default: the local broker)")
    produce.add_argument("--rows", type=int, default=100_000, help="rows in all (default 100000)")
    produce.add_argument("--train-fraction", type=float, default=0.6,
                         help="share of rows for training (default 0.6)")
    produce.add_argument("--train-topic", default="susy-train")
    produce.add_argument("--test-topic", default="susy-test")
    produce.add_argument("--train-partitions", type=int, default=1)
    produce.add_argument("--test-partitions", type=int, default=2)
    produce.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    produce.add_argument("--family", default="tutorial", choices=list(FAMILIES),
                         help="generated data family (default: the tutorial's SUSY-like rows)")
    produce.add_argument("--susy", help="read the real UCI SUSY.csv(.gz) instead of synthetic data")
    produce.add_argument("--format", choices=["csv", "avro"], default="csv",
                         help="csv (the tutorial's, default) or avro (the Confluent wire format; "
                              "needs --schema-registry)")
    produce.add_argument("--schema-registry", metavar="URL",
                         help="a Confluent-compatible registry, e.g. "
                              "http://127.0.0.1:8080/apis/ccompat/v7: the schema is registered "
                              "under <topic>-value")
    produce.add_argument("--quiet", action="store_true", help="no progress bar")
    produce.set_defaults(handler=command_produce)

    run = commands.add_parser("run", help="run a StreamingTrainingJob manifest locally")
    run.add_argument("job", help="the job manifest (YAML)")
    run.add_argument("--output-dir", help="folder for every artefact: model, checkpoints, "
                                          f"ledgers, logs, results (default: {LOCAL_OUTPUT}/JOB)")
    run.add_argument("--source-dir", help="folder holding the model of spec.model.source "
                                          "(default for source.job: its folder beside --output-dir)")
    run.add_argument("--bootstrap-servers", help="override the spec's Kafka address")
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.set_defaults(handler=command_run)

    run_mode = commands.add_parser("run-mode", help="one phase inside a pod")
    run_mode.add_argument("mode", choices=MODES)
    run_mode.add_argument("--output-dir", help="artefacts folder (default: spec.model.output.path)")
    run_mode.set_defaults(handler=command_run_mode)

    demo = commands.add_parser("demo", help="the Kafka tutorial end to end on a local broker")
    demo.add_argument("--output", default="demo-output", help="folder for model, results, plots")
    demo.add_argument("--rows", type=int, default=100_000)
    demo.add_argument("--bootstrap-servers", help="use this broker instead of starting one")
    demo.add_argument("--format", choices=["csv", "avro"], default="csv",
                      help="csv (the tutorial's) or avro: Avro records through a local schema "
                           "registry, started for the demo (fetched from Maven Central the "
                           "first time)")
    demo.set_defaults(handler=command_demo)
    return parser


TENSORFLOW_COMMANDS = frozenset({"run", "run-mode", "demo"})


def main(argv: list[str] | None = None) -> int:
    """Entry point of `streamtrain`."""
    arguments = build_parser().parse_args(argv)
    if arguments.command in TENSORFLOW_COMMANDS:
        from workload import tflog

        tflog.quiet()
        tflog.filter_routine_stderr()
    code: int = arguments.handler(arguments)
    return _finish(code)


if __name__ == "__main__":
    sys.exit(main())
