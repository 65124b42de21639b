"""Run training in its own process (the fault scenarios kill it with SIGKILL).

Usage: python train_child.py SPEC_JSON OUTPUT_DIR [SEED TRACE_FILE]
With SEED, Keras and TensorFlow are seeded (the scenario's uninterrupted run
uses the same seed); with TRACE_FILE, one line `epoch batch` is appended
and flushed after each batch trained, so what the process trained before a
SIGKILL is known. Prints the pod report; exit code 0 when training completed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import IO

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from workload.artifacts import Artifacts
from workload.kafka.connection import connection_for
from workload.modes.train import run_train
from workload.spec import parse_spec


class BatchTrace(keras.callbacks.Callback):  # type: ignore[misc]
    """Appends `epoch batch` (batch counted within this process's `fit` call) per batch."""

    def __init__(self, sink: IO[str]) -> None:
        super().__init__()
        self.sink, self.epoch = sink, 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self.sink.write(f"{self.epoch} {batch}\n")
        self.sink.flush()


def main() -> int:
    spec = parse_spec(json.loads(Path(sys.argv[1]).read_text()))
    callbacks: list[keras.callbacks.Callback] = []
    with contextlib.ExitStack() as stack:
        if len(sys.argv) > 3:
            keras.utils.set_random_seed(int(sys.argv[3]))
            callbacks.append(BatchTrace(stack.enter_context(Path(sys.argv[4]).open("a"))))
        report = run_train("child", spec, connection_for(spec.kafka),
                           Artifacts(Path(sys.argv[2])), progress=False, callbacks=callbacks)
    print(report.to_message(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
