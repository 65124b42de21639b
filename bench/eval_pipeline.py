"""Evaluation throughput: the tutorial's `KafkaGroupIODataset` pipeline against evaluate mode.

Registers two figures with the benchmark harness (imported by
`bench.input_pipeline`), over the same test records (the test topic, two
partitions) as the tutorial's evaluation, `seed_eval_rps` (`bench.tutorial`,
on Kafka 3.9, the newest its reader can read):
- `eval_phase_rps`: what a user waits for: `streamtrain run-mode evaluate`
  in a new process (as in a pod), from its start to its exit: interpreter
  and TensorFlow start-up, model load, connection check, reads, decoding,
  scoring, ledger and commits; records over the phase's wall time as its
  results file reports it (`phaseSeconds`);
- `eval_rps`: the inner rate of `run_evaluate` in this process, from its call
  to its return.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.compute import N_FEATURES
from bench.harness import TARGETS, BenchContext, Target, measurement
from workload.artifacts import Artifacts
from workload.model.build import build_model
from workload.modes.evaluate import run_evaluate
from workload.runner import JOB_NAME_ENV, JOB_SPEC_ENV
from workload.spec import DataSpec, ModelSpec, StreamingTrainingJobSpec, dump_spec

TARGETS.extend([
    Target("eval_phase_rps", "seed_eval_rps", 10.0),
])


def _model_file(folder: Path) -> Artifacts:
    """An output folder holding the tutorial's MLP as the trained model."""
    artifacts = Artifacts(folder).prepare()
    build_model(ModelSpec.model_validate({"preprocessing": "none"}),
                DataSpec(features=N_FEATURES)).save(
        artifacts.keras_model)
    return artifacts


def _evaluate_spec(context: BenchContext, folder: Path) -> StreamingTrainingJobSpec:
    return StreamingTrainingJobSpec.model_validate({
        "kafka": {"bootstrapServers": context.connection.bootstrap_servers},
        "evaluate": {"topic": context.test_topic,
                     "consumerGroup": f"eval-{uuid.uuid4().hex[:8]}", "streamTimeoutMs": 0},
        "model": {"output": {"path": str(folder)}},
    })


@measurement("streamtrain's evaluate phase, in a new process as in a pod")
def eval_phase(context: BenchContext) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="streamtrain-bench-phase-"))
    artifacts = _model_file(folder)
    spec = _evaluate_spec(context, folder)
    env = {**os.environ, JOB_SPEC_ENV: json.dumps(dump_spec(spec)), JOB_NAME_ENV: "bench"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "workload.cli", "run-mode", "evaluate",
                    "--output-dir", str(folder)], env=env, check=True, capture_output=True)
    waited = time.perf_counter() - started
    results = json.loads(artifacts.results("evaluate").read_text())
    if results["recordsThisRun"] != context.test_records:
        raise RuntimeError(f"the evaluate phase scored {results['recordsThisRun']} records")
    return {"eval_phase_rps": results["phaseRecordsPerSecond"],
            "eval_phase_s": results["phaseSeconds"], "eval_phase_waited_s": waited}


@measurement("streamtrain's exactly-once evaluation, inner rate")
def fast_eval(context: BenchContext) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="streamtrain-bench-eval-"))
    artifacts = _model_file(folder)
    spec = _evaluate_spec(context, folder)
    started = time.perf_counter()
    report = run_evaluate("bench", spec, context.connection, artifacts, progress=False)
    seconds = time.perf_counter() - started
    if not report.ok or report.metrics.records_evaluated != context.test_records:
        raise RuntimeError(f"evaluation failed: {report.message}")
    return {"eval_rps": context.test_records / seconds}
