"""Replicas on one machine: 1 against 2 training workers, 1 against 2 evaluators, same data.

Registers figures with the benchmark harness (imported by
`bench.input_pipeline`). Each phase runs as `streamtrain run` runs a phase
of N replicas (`workload.local_group`: N processes of `streamtrain run-mode`,
as N pods would), so both counts pay the same kind of start-up:
- `train_1w_epoch_s`, `train_2w_epoch_s`: seconds per epoch (training
  alone, from the results) over the training topic (one partition: each
  worker an offset slice), at the tutorial's batch of 64 records, and
  `..._b1024_...` at 1,024 records per step, where a step's all-reduce is
  shared by more records; `train_2w_speedup_ratio`,
  `train_2w_b1024_speedup_ratio`: the 1-worker time over the 2-worker time;
- `eval_1x_s`, `eval_2x_s`: wall time of the evaluate phase over the test
  topic (two partitions: one per evaluator), from starting the processes to
  the merged result (the model is the 1-worker run's); `eval_2x_speedup_ratio` the same
  ratio.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import BenchContext, measurement
from workload.artifacts import Artifacts
from workload.local_group import run_local_group
from workload.spec import StreamingTrainingJobSpec

TRAIN_EPOCHS = 2
"""Epochs of each training run (the per-epoch figure is their mean)."""

LARGE_BATCH = 1024
"""Records per step of the second pair of training runs."""


def _spec(context: BenchContext, folder: Path, **sections: Any) -> StreamingTrainingJobSpec:
    return StreamingTrainingJobSpec.model_validate({
        "kafka": {"bootstrapServers": context.connection.bootstrap_servers},
        "model": {"output": {"path": str(folder)}}, **sections})


def _train(context: BenchContext, folder: Path, workers: int, batch: int) -> dict[str, Any]:
    spec = _spec(context, folder, trainer={"replicas": workers}, train={
        "topic": context.topic, "epochs": TRAIN_EPOCHS, "batchSize": batch})
    artifacts = Artifacts(folder).prepare()
    report = run_local_group("train", "bench", spec, context.connection.bootstrap_servers,
                             artifacts)
    if not report.ok:
        raise RuntimeError(f"training with {workers} workers failed: {report.message}")
    results: dict[str, Any] = json.loads(artifacts.results("train").read_text())
    return results


@measurement("replicas: 1 training worker against 2, 1 evaluator against 2")
def replicas(context: BenchContext) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="streamtrain-bench-replicas-"))
    figures: dict[str, float] = {}
    for batch, name in ((64, ""), (LARGE_BATCH, "_b1024")):
        seconds = {}
        for workers in (1, 2):
            results = _train(context, root / f"{workers}w{name}", workers, batch)
            seconds[workers] = results["fitSeconds"] / results["epochsRun"]
            figures[f"train_{workers}w{name}_epoch_s"] = seconds[workers]
        figures[f"train_2w{name}_speedup_ratio"] = seconds[1] / seconds[2]
    folder = root / "1w"  # evaluate the model the 1-worker run trained
    for count in (1, 2):
        spec = _spec(context, folder, evaluator={"replicas": count}, evaluate={
            "topic": context.test_topic, "consumerGroup": f"bench-{uuid.uuid4().hex[:8]}",
            "streamTimeoutMs": 0})
        started = time.perf_counter()
        report = run_local_group("evaluate", "bench", spec,
                                 context.connection.bootstrap_servers, Artifacts(folder))
        figures[f"eval_{count}x_s"] = time.perf_counter() - started
        if not report.ok or report.metrics.records_evaluated != context.test_records:
            raise RuntimeError(f"evaluation with {count} evaluators failed: {report.message}")
    figures["eval_2x_speedup_ratio"] = figures["eval_1x_s"] / figures["eval_2x_s"]
    return figures
