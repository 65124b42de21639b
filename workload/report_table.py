"""The result table printed at the end of a run."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from workload.status import PodReport


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def render_reports(reports: list[PodReport], console: Console | None = None,
                   title: str = "streamtrain results") -> None:
    """One row per phase: outcome, quality, records, bad records, throughput."""
    table = Table(title=title)
    for column in ("phase", "outcome", "loss", "accuracy", "AUC", "records", "bad", "records/s"):
        table.add_column(column, justify="left" if column in ("phase", "outcome") else "right")
    for report in reports:
        metrics = report.metrics
        if report.mode == "train":
            loss, accuracy, auc, records = (metrics.train_loss, metrics.train_accuracy, None,
                                            metrics.records_trained)
        elif report.mode == "evaluate":
            loss, accuracy, auc, records = (metrics.eval_loss, metrics.eval_accuracy,
                                            metrics.eval_auc, metrics.records_evaluated)
        elif report.mode == "serve":
            loss, accuracy, auc, records = None, None, None, metrics.records_served
        else:
            loss, accuracy, auc, records = (None, metrics.online_accuracy, None,
                                            metrics.records_online)
        outcome = "ok" if report.ok else f"FAILED: {report.message}"
        table.add_row(report.mode, outcome, _number(loss), _percent(accuracy), _number(auc),
                      _count(records), _count(metrics.bad_records),
                      _number(report.records_per_second, 0))
    table.caption = "; ".join(f"{report.mode}: preprocessing {report.preprocessing}"
                              for report in reports if report.preprocessing) or None
    (console or Console()).print(table)
