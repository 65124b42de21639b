"""Model quality: the default job on every generated family, against the best any model can do.

Run `python -m bench.quality [--bootstrap HOST:PORT] [--rows N] [--preprocessing CHOICE]`
(`make quality`). Without `--bootstrap` a local broker is started for the run.
For each family of `workload.datagen.families`: 100,000 rows split 60/40 into a
train topic (1 partition) and a test topic (2 partitions), the default spec
(only the topics, the family's record layout and its task set: the tutorial's
network, 10 epochs, robust preprocessing) trained and evaluated exactly as
`streamtrain run` does, through Kafka. The table gives per family:

- classification (the binary families, `tickets`): test accuracy, the
  family's Bayes-optimal accuracy (Monte Carlo on 2M fresh rows, with its
  standard error) and the gap in points: the goal is a gap of at most
  `GOAL_POINTS`; the accuracy of the Bayes rule itself on the same test rows,
  and the gap to it: 40,000 test rows carry about 0.2 points of sampling
  noise, which this second gap does not have;
- regression (`demand`): test RMSE against the noise floor (the RMSE of the
  conditional mean, exactly the noise's standard deviation): the goal is at
  most `GOAL_RMSE_PERCENT` above it; and the RMSE of the conditional mean on
  the same test rows.

Writes `quality-results.json`.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/quality.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workload import tflog

tflog.quiet()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.harness import broker, machine  # noqa: E402
from workload.artifacts import Artifacts  # noqa: E402
from workload.datagen.families import FAMILIES, Family, data_spec  # noqa: E402
from workload.datagen.produce import produce_split  # noqa: E402
from workload.datagen.table import SusyData  # noqa: E402
from workload.datagen.task_families import RegressionFamily  # noqa: E402
from workload.kafka.connection import KafkaConnection  # noqa: E402
from workload.runner import run_phases  # noqa: E402
from workload.spec import parse_spec  # noqa: E402

GOAL_POINTS = 1.0
"""Largest gap to the Bayes-optimal accuracy, in points, that meets the goal (classification)."""

GOAL_RMSE_PERCENT = 5.0
"""Largest excess of the test RMSE over the noise floor, in percent, that meets the goal
(regression)."""

TRAIN_SHARE = 0.6
"""Share of the rows written to the train topic (the tutorial's 60/40)."""

SEED = 0
"""Seed of every family's rows."""


def measure(family: Family, bootstrap: str, rows: int, preprocessing: str,
            folder: Path) -> dict[str, Any]:
    """Produce the family's rows, train and evaluate the default job; the figures."""
    connection = KafkaConnection(bootstrap)
    data = family.generate(rows, SEED)
    train_rows = int(rows * TRAIN_SHARE)
    suffix = uuid.uuid4().hex[:8]
    train, test = f"quality-{family.name}-train-{suffix}", f"quality-{family.name}-test-{suffix}"
    layout = data_spec(family)
    produce_split(connection, train, test, data, train_rows=train_rows, data_spec=layout,
                  progress=False)
    task = getattr(family, "task", "binary")
    spec = parse_spec({
        "kafka": {"bootstrapServers": bootstrap},
        "data": layout.model_dump(mode="json", by_alias=True, exclude_none=True),
        "train": {"topic": train},
        "evaluate": {"topic": test, "consumerGroup": f"quality-{suffix}", "streamTimeoutMs": 0},
        "model": {"preprocessing": preprocessing, "task": task},
    })
    started = time.perf_counter()
    reports = run_phases(f"quality-{family.name}", spec, connection,
                         Artifacts(folder / family.name), progress=False)
    seconds = time.perf_counter() - started
    failed = [report.message for report in reports if not report.ok]
    if failed or len(reports) != 2:
        raise RuntimeError(f"{family.name}: {'; '.join(failed) or 'a phase did not run'}")
    held_out = data.slice(train_rows, rows)
    common = {"family": family.name, "task": task, "description": family.description,
              "features": len(family.columns) + len(data.categorical),
              "preprocessing": reports[0].preprocessing, "seconds": round(seconds, 1)}
    if isinstance(family, RegressionFamily):
        return {**common, **_regression(family, reports[1].metrics.eval_rmse, held_out)}
    return {**common, **_classification(family, reports[1].metrics.eval_accuracy, data,
                                        held_out)}


def _classification(family: Family, accuracy: float | None, data: SusyData,
                    held_out: SusyData) -> dict[str, Any]:
    """Test accuracy against the Bayes rate, and against the Bayes rule on the same rows."""
    assert not isinstance(family, RegressionFamily)
    accuracy = accuracy or 0.0
    bayes, error = family.bayes_optimal_accuracy()
    posterior = family.posterior(held_out)
    predicted = (posterior.argmax(axis=1) if posterior.ndim == 2
                 else (posterior > 0.5).astype(np.int64))
    rule = float(np.mean(predicted == held_out.labels))
    shares = np.bincount(data.labels) / data.rows
    return {
        "positiveShare": round(float(shares[-1]), 4), "rarestShare": round(float(shares.min()), 4),
        "testAccuracy": accuracy, "bayesOptimalAccuracy": round(bayes, 5),
        "bayesStandardError": round(error, 5), "gapPoints": round(100 * (bayes - accuracy), 2),
        "bayesRuleOnTestRows": round(rule, 5),
        "gapToBayesRuleOnTestRowsPoints": round(100 * (rule - accuracy), 2),
        "withinGoal": 100 * (bayes - accuracy) <= GOAL_POINTS,
    }


def _regression(family: RegressionFamily, rmse: float | None,
                held_out: SusyData) -> dict[str, Any]:
    """Test RMSE against the noise floor, and against the best possible model on the same rows."""
    rmse = rmse if rmse is not None else float("inf")
    assert held_out.targets is not None
    optimum = float(np.sqrt(np.mean((family.optimum(held_out) - held_out.targets) ** 2)))
    return {
        "testRmse": rmse, "noiseFloor": family.noise,
        "abovePercent": round(100 * (rmse / family.noise - 1), 2),
        "optimumOnTestRows": round(optimum, 5),
        "aboveOptimumOnTestRowsPercent": round(100 * (rmse / optimum - 1), 2),
        "withinGoal": rmse <= (1 + GOAL_RMSE_PERCENT / 100) * family.noise,
    }


def render(results: list[dict[str, Any]], console: Console, preprocessing: str) -> None:
    """The table of figures per family, then each family's preprocessing."""
    table = Table(title=f"default model vs the best any model can do ({preprocessing})")
    for column in ("family", "task", "test", "optimum", "gap", "optimum, test rows", "gap",
                   "goal", "met"):
        table.add_column(column, justify="left" if column in ("family", "task") else "right")
    for row in results:
        if row["task"] == "regression":
            table.add_row(
                row["family"], "regression", f"RMSE {row['testRmse']:.4f}",
                f"{row['noiseFloor']:.4f}", f"+{row['abovePercent']:.2f} %",
                f"{row['optimumOnTestRows']:.4f}",
                f"+{row['aboveOptimumOnTestRowsPercent']:.2f} %",
                f"≤ +{GOAL_RMSE_PERCENT:g} %", "yes" if row["withinGoal"] else "NO")
            continue
        table.add_row(
            row["family"], row["task"], f"{100 * row['testAccuracy']:.2f} %",
            f"{100 * row['bayesOptimalAccuracy']:.2f} ± {100 * row['bayesStandardError']:.2f}",
            f"{row['gapPoints']:.2f} pt", f"{100 * row['bayesRuleOnTestRows']:.2f}",
            f"{row['gapToBayesRuleOnTestRowsPoints']:.2f} pt", f"≤ {GOAL_POINTS:g} pt",
            "yes" if row["withinGoal"] else "NO")
    console.print(table)
    console.print("classification: accuracy against the Bayes-optimal accuracy (gaps in "
                  "points); regression: RMSE against the noise floor")
    for row in results:
        console.print(f"{row['family']}: {row['preprocessing']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="Kafka address (default: start a local broker)")
    parser.add_argument("--rows", type=int, default=100_000, help="rows per family")
    parser.add_argument("--preprocessing", default="robust",
                        choices=["robust", "standardize", "none"])
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help="comma-separated family names (default: all)")
    parser.add_argument("--output", type=Path, default=Path("quality-results.json"))
    arguments = parser.parse_args(argv)
    console = Console(width=120)
    if arguments.bootstrap is None:
        # tensorflow-io's readers crash their process when the broker goes away first: the
        # child that reads exits while the broker still runs.
        with broker(None) as bootstrap:
            return subprocess.call(
                [sys.executable, "-m", "bench.quality", *(argv or sys.argv[1:]),
                 "--bootstrap", bootstrap, "--output", str(arguments.output.resolve())],
                cwd=Path(__file__).resolve().parent.parent)
    results = []
    with tempfile.TemporaryDirectory(prefix="streamtrain-quality-") as folder:
        for name in arguments.families.split(","):
            console.print(f"[dim]{name}: producing {arguments.rows:,} rows, training, "
                          "evaluating ...[/dim]")
            results.append(measure(FAMILIES[name], arguments.bootstrap, arguments.rows,
                                   arguments.preprocessing, Path(folder)))
    render(results, console, arguments.preprocessing)
    document = {"rows": arguments.rows, "trainShare": TRAIN_SHARE, "goalPoints": GOAL_POINTS,
                "goalRmsePercent": GOAL_RMSE_PERCENT,
                "preprocessing": arguments.preprocessing, "families": results,
                "machine": machine(),
                "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    arguments.output.write_text(json.dumps(document, indent=2) + "\n")
    console.print(str(arguments.output.resolve()))
    return 0 if all(row["withinGoal"] for row in results) else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # tensorflow-io's Kafka readers cannot be torn down at interpreter exit
