"""The benchmark's frame: two brokers, one data set, two topics; measurements register as rows.

The brokers are the Kafka this project reads by default (4.x) and a Kafka 3.9
for the tutorial's pipeline, which cannot read Kafka 4: every tutorial
baseline runs there, on the same rows. A measurement is a function of the
`BenchContext` returning figures by key (e.g. `{"input_rps": 123456.0}`).
Modules add theirs with `@measurement`; `run` executes them in registration
order, prints a table, checks the targets and writes everything as JSON,
whose path it prints last.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from localparts import kafka as local_kafka
from workload.datagen.produce import produce_split
from workload.datagen.records import Message, encode
from workload.datagen.synthetic import generate
from workload.datagen.table import SusyData, split
from workload.kafka.connection import KafkaConnection


@dataclass
class BenchContext:
    """What every measurement shares: the brokers, the rows, the topics holding them."""

    connection: KafkaConnection
    """The Kafka 4 broker (the default client's)."""
    compat_connection: KafkaConnection
    """The Kafka 3.9 broker, where the tutorial's tensorflow-io pipeline runs."""
    data: SusyData
    """The training rows."""
    messages: list[Message]
    """The training rows as records."""
    topic: str
    """The training rows in a one-partition topic (the tutorial's train layout), on both."""
    test_topic: str
    """The test rows in a two-partition topic (the tutorial's test layout), on both."""
    test_records: int
    seed: int
    tutorial_python: str
    """The Python of the tensorflow-io set's environment (TensorFlow 2.16), where the tutorial's
    pipeline runs (`bench.tutorial`)."""
    figures: dict[str, float] = field(default_factory=dict)
    """Figures measured so far (later measurements may use earlier ones)."""


Measurement = Callable[[BenchContext], dict[str, float]]


@dataclass(frozen=True)
class Target:
    """A figure that must be at least `factor` times another one (or at most, `upper`); with
    `reference` None, at least (at most) `factor` itself."""

    key: str
    reference: str | None
    factor: float
    upper: bool = False

    def check(self, figures: dict[str, float]) -> tuple[str, bool] | None:
        """A sentence and whether it holds; `None` when a figure is missing."""
        if self.key not in figures:
            return None
        if self.reference is None:
            value = figures[self.key]
            holds = value <= self.factor if self.upper else value >= self.factor
            return f"{self.key} {'≤' if self.upper else '≥'} {self.factor:,g}: {value:,.0f}", holds
        if self.reference not in figures:
            return None
        value, reference = figures[self.key], figures[self.reference]
        ratio = value / reference if reference else float("inf")
        relation = "≤" if self.upper else "≥"
        holds = ratio <= self.factor if self.upper else ratio >= self.factor
        return (f"{self.key} {relation} {self.factor:g} x {self.reference}: "
                f"{value:,.3f} vs {reference:,.3f} (ratio {ratio:,.2f})"), holds


PASSES = 2
"""Passes per rate measurement; the fastest counts."""


def best_rate(count: Callable[[], int]) -> float:
    """Items per second of the fastest of `PASSES` calls of `count` (each returns how many it did)."""
    rates = []
    for _ in range(PASSES):
        started = time.perf_counter()
        done = count()
        rates.append(done / (time.perf_counter() - started))
    return max(rates)


MEASUREMENTS: list[tuple[str, Measurement]] = []
TARGETS: list[Target] = []


def measurement(name: str) -> Callable[[Measurement], Measurement]:
    """Register a measurement under `name` (rows run in registration order)."""
    def register(function: Measurement) -> Measurement:
        MEASUREMENTS.append((name, function))
        return function
    return register


@contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    """The given broker, or a fresh local Kafka 4 broker for the duration of the run."""
    if bootstrap:
        yield bootstrap
        return
    folder = Path(tempfile.mkdtemp(prefix="streamtrain-bench-"))
    started = local_kafka.start(folder / "kafka")
    try:
        yield started.bootstrap_servers
    finally:
        started.stop()


@contextmanager
def brokers() -> Iterator[tuple[str, str]]:
    """Fresh local brokers, Kafka 4 and Kafka 3.9, for the duration of the run."""
    folder = Path(tempfile.mkdtemp(prefix="streamtrain-bench-"))
    started = [local_kafka.start(folder / "kafka"),
               local_kafka.start(folder / "kafka3", version=local_kafka.COMPAT_KAFKA_VERSION)]
    try:
        yield started[0].bootstrap_servers, started[1].bootstrap_servers
    finally:
        for broker in started:
            broker.stop()


def prepare(bootstrap: str, compat_bootstrap: str, rows: int, test_rows: int,
            seed: int, tutorial_python: str) -> BenchContext:
    """Generate `rows` training and `test_rows` test rows and write them to both brokers as
    `streamtrain produce` does; the first write is timed (`produce_rps`, `produce_send_rps`)."""
    connection, compat = KafkaConnection(bootstrap), KafkaConnection(compat_bootstrap)
    data = generate(rows + test_rows, seed=seed)
    train, _ = split(data, rows)
    stamp = f"{os.getpid()}-{int(time.time())}"
    topic, test_topic = f"bench-train-{stamp}", f"bench-test-{stamp}"
    context = BenchContext(connection, compat, train, encode(train), topic, test_topic,
                           test_rows, seed, tutorial_python)
    for target in (connection, compat):
        report = produce_split(target, topic, test_topic, data, train_rows=rows,
                               progress=False)
        if target is connection:
            sending = report.train.seconds + report.test.seconds
            context.figures.update(produce_rps=report.records_per_second,
                                   produce_send_rps=report.records / sending)
    return context


def run(context: BenchContext, console: Console,
        only: Sequence[str] = ()) -> dict[str, float]:
    """Run every measurement (or those whose function is named in `only`), printing each figure
    as it arrives."""
    for name, function in MEASUREMENTS:
        if only and function.__name__ not in only:
            continue
        console.print(f"[dim]measuring {name} ...[/dim]")
        figures = function(context)
        context.figures.update(figures)
        for key, value in figures.items():
            console.print(f"  {key} = {value:,.3f}")
    return context.figures


def report(context: BenchContext, console: Console, output: Path) -> Path:
    """Print the table and the targets; write the JSON document; return its path."""
    table = Table(title=f"streamtrain benchmark: {len(context.messages):,} training records, "
                        f"{context.test_records:,} test records")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in context.figures.items():
        table.add_row(key, f"{value:,.3f}" if key.endswith(("_s", "_ratio"))
                      else f"{value:,.0f}")
    console.print(table)
    checks = []
    for target in TARGETS:
        checked = target.check(context.figures)
        if checked is None:
            continue
        sentence, holds = checked
        checks.append({"target": sentence, "met": holds})
        console.print(("[green]met[/green]  " if holds else "[red]MISSED[/red] ") + sentence)
    document: dict[str, Any] = {
        "records": len(context.messages),
        "testRecords": context.test_records,
        "kafka": {"default": local_kafka.KAFKA_VERSION,
                  "tutorial": local_kafka.COMPAT_KAFKA_VERSION},
        "figures": context.figures,
        "targets": checks,
        "machine": machine(),
        "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n")
    return output


def machine() -> dict[str, Any]:
    """Where the figures came from."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model or platform.processor(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "system": platform.platform()}
