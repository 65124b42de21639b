"""The benchmark's frame: one broker, one data set, one topic; measurements register as rows.

A measurement is a function of the `BenchContext` returning figures by key
(e.g. `{"input_rps": 123456.0}`). Modules add theirs with `@measurement`;
`run` executes them in registration order, prints a table, checks the
targets and writes everything as JSON, whose path it prints last.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from localparts import kafka as local_kafka
from workload.data.producer import produce_messages
from workload.data.records import Message, encode
from workload.data.synthetic import generate
from workload.data.table import SusyData
from workload.kafka_connection import KafkaConnection


@dataclass
class BenchContext:
    """What every measurement shares: the broker, the rows, the topics holding them."""

    connection: KafkaConnection
    data: SusyData
    messages: list[Message]
    topic: str
    """The rows in a one-partition topic (the tutorial's train layout)."""
    figures: dict[str, float] = field(default_factory=dict)
    """Figures measured so far (later measurements may use earlier ones)."""


Measurement = Callable[[BenchContext], dict[str, float]]


@dataclass(frozen=True)
class Target:
    """A figure that must be at least `factor` times another one (or at most, `upper`)."""

    key: str
    reference: str
    factor: float
    upper: bool = False

    def check(self, figures: dict[str, float]) -> tuple[str, bool] | None:
        """A sentence and whether it holds; `None` when a figure is missing."""
        if self.key not in figures or self.reference not in figures:
            return None
        value, reference = figures[self.key], figures[self.reference]
        ratio = value / reference if reference else float("inf")
        relation = "≤" if self.upper else "≥"
        holds = ratio <= self.factor if self.upper else ratio >= self.factor
        return (f"{self.key} {relation} {self.factor:g} x {self.reference}: "
                f"{value:,.3f} vs {reference:,.3f} (ratio {ratio:,.2f})"), holds


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
    """The given broker, or a fresh local one for the duration of the run."""
    if bootstrap:
        yield bootstrap
        return
    folder = Path(tempfile.mkdtemp(prefix="streamtrain-bench-"))
    started = local_kafka.start(folder / "kafka")
    try:
        yield started.bootstrap_servers
    finally:
        started.stop()


def prepare(bootstrap: str, rows: int, seed: int) -> BenchContext:
    """Generate `rows` synthetic rows and write them to a new one-partition topic."""
    connection = KafkaConnection(bootstrap)
    data = generate(rows, seed=seed)
    messages = encode(data)
    topic = f"bench-{os.getpid()}-{int(time.time())}"
    produce_messages(connection, topic, messages, partitions=1)
    return BenchContext(connection, data, messages, topic)


def run(context: BenchContext, console: Console) -> dict[str, float]:
    """Run every measurement, printing each figure as it arrives."""
    for name, function in MEASUREMENTS:
        console.print(f"[dim]measuring {name} ...[/dim]")
        figures = function(context)
        context.figures.update(figures)
        for key, value in figures.items():
            console.print(f"  {key} = {value:,.3f}")
    return context.figures


def report(context: BenchContext, console: Console, output: Path) -> Path:
    """Print the table and the targets; write the JSON document; return its path."""
    table = Table(title=f"streamtrain benchmark: {len(context.messages):,} records")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in context.figures.items():
        table.add_row(key, f"{value:,.3f}" if key.endswith("_s") else f"{value:,.0f}")
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
