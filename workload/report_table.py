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


def _headline(accuracy: float | None, rmse: float | None) -> str:
    """Accuracy as a percentage, or (regression) RMSE."""
    return f"RMSE {_number(rmse)}" if rmse is not None else _percent(accuracy)


def render_reports(reports: list[PodReport], console: Console | None = None,
                   title: str = "streamtrain results") -> None:
    """One row per phase: outcome, quality, records, bad records, throughput."""
    table = Table(title=title)
    for column in ("phase", "outcome", "loss", "accuracy / RMSE", "AUC", "records", "bad",
                   "records/s"):
        table.add_column(column, justify="left" if column in ("phase", "outcome") else "right")
    for report in reports:
        metrics = report.metrics
        if report.mode == "train":
            loss, headline, auc, records = (
                metrics.train_loss, _headline(metrics.train_accuracy, metrics.train_rmse), None,
                metrics.records_trained)
        elif report.mode == "evaluate":
            loss, headline, auc, records = (
                metrics.eval_loss, _headline(metrics.eval_accuracy, metrics.eval_rmse),
                metrics.eval_auc, metrics.records_evaluated)
        elif report.mode == "serve":
            loss, headline, auc, records = None, "", None, metrics.records_served
        else:
            loss, headline, auc, records = (
                None, _headline(metrics.online_accuracy, metrics.online_rmse), None,
                metrics.records_online)
        outcome = "ok" if report.ok else f"FAILED: {report.message}"
        table.add_row(report.mode, outcome, _number(loss), headline, _number(auc),
                      _count(records), _count(metrics.bad_records),
                      _number(report.records_per_second, 0))
    table.caption = "; ".join(f"{report.mode}: preprocessing {report.preprocessing}"
                              for report in reports if report.preprocessing) or None
    (console or Console()).print(table)
