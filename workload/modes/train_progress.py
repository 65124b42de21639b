"""A live display of training: records read, then records trained per epoch, with rates.

Rich draws it on a terminal; with `enabled=False` (pods, tests) nothing is
drawn. Updates are throttled so a fast epoch is not slowed by redrawing.
The epoch callback also hands its figures to the live progress channel
(`workload.progress`: a no-op outside a pod), counting the batches a resumed
epoch skipped, so the records posted never fall back after a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

import keras
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from workload import progress as live

REFRESH_S = 0.25
"""Seconds between two updates of the display."""


class TrainProgress:
    """Context manager that shows reading and training progress."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._last_update = 0.0

    def __enter__(self) -> TrainProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[note]}"),
            )
            self._progress.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(kind, error, trace)

    def task(self, description: str, total: int) -> TaskID | None:
        """A new progress line; `None` when disabled."""
        if self._progress is None:
            return None
        return self._progress.add_task(description, total=total, rate="", note="")

    def update(self, task: TaskID | None, completed: int, started: float, note: str = "",
               force: bool = False) -> None:
        """Set a line's count, its rate since `started` and a note (throttled unless forced)."""
        if self._progress is None or task is None:
            return
        now = time.perf_counter()
        if not force and now - self._last_update < REFRESH_S:
            return
        self._last_update = now
        rate = completed / max(now - started, 1e-9)
        self._progress.update(task, completed=completed, rate=f"{rate:,.0f} rec/s", note=note)

    def keras_callback(self, records_per_epoch: int, batch_size: int, epochs: int,
                       skipped: Callable[[], int] = lambda: 0) -> keras.callbacks.Callback:
        """A callback that shows each epoch's records as they are trained (`skipped`: batches
        of the current epoch done before this `fit`, by a run that resumed mid-epoch)."""
        return _EpochProgress(self, records_per_epoch, batch_size, epochs, skipped)


class _EpochProgress(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(self, display: TrainProgress, records: int, batch_size: int,
                 epochs: int, skipped: Callable[[], int]) -> None:
        super().__init__()
        self.display, self.records, self.batch_size, self.epochs = (
            display, records, batch_size, epochs)
        self.skipped = skipped
        self.task: TaskID | None = None
        self.started = time.perf_counter()
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.task = self.display.task(f"epoch {epoch + 1}/{self.epochs}", self.records)
        self.started = time.perf_counter()
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        # Keras counts the batches of this `fit`; a resumed epoch began after `skipped` of them.
        done = min(self.records, (self.skipped() + batch + 1) * self.batch_size)
        self.display.update(self.task, done, self.started)
        figures = logs or {}
        live.report(records=self.epoch * self.records + done,
                    records_total=self.epochs * self.records, epoch=self.epoch,
                    epochs=self.epochs, loss=figures.get("loss"),
                    accuracy=figures.get("accuracy"))

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        figures = logs or {}
        name, key = ("rmse", "rmse") if "rmse" in figures else ("acc", "accuracy")
        note = f"loss {figures.get('loss', float('nan')):.4f} {name} {figures.get(key, 0):.4f}"
        self.display.update(self.task, self.records, self.started, note, force=True)
