"""Scenario: a multiclass or a regression evaluator SIGKILLed at seeded random points.

As `evaluate_faults` does for the binary task, without the broker restart: the
topic (a `tickets` or `demand` family's records, 2 partitions) is evaluated
once without faults, then again under another consumer group while the
evaluator is SIGKILLed at `kills` random points (each a random progress
target plus a random delay: inside a chunk, or between a ledger save and its
commit), then run to the end. Every record must be counted once and the
task's figures must equal the uninterrupted run's: the confusion matrix
(multiclass) or the sums behind RMSE, MAE and R² (regression) add up only
when no record was lost or counted twice.
"""

from __future__ import annotations

import functools
import random
import time
from pathlib import Path
from typing import Any

from tests.faults import processes
from tests.faults.evaluate_faults import committed_offsets, ledger_progress
from tests.faults.figures import Figure, figure
from tests.integration.modes_support import job_spec
from workload.artifacts import Artifacts
from workload.data.decoded import Task
from workload.datagen.records import encode
from workload.datagen.task_families import DEMAND, TICKETS
from workload.kafka.admin import ensure_topic
from workload.kafka.bounds import end_offsets
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import produce_messages

FIGURES = {"multiclass": ("confusionMatrix", "accuracy", "macroF1", "loss"),
           "regression": ("rmse", "mae", "r2", "meanError")}
"""The figures of each task that must equal the uninterrupted run's."""

RELATIVE = 1e-9
"""How close a floating figure must be to the uninterrupted run's (the same sums, added in the
same chunks)."""


def scenario(task: Task) -> str:
    """The scenario's name in the report."""
    return f"evaluate {task}: SIGKILLs"


def save_untrained_model(path: Path, task: Task, rows: int) -> None:
    """A model of the task built from the family's records (untrained: its outputs are spread)."""
    from workload.data.decode import LabelRule, make_decoder
    from workload.model.build import build_model
    from workload.model.export import write_keras_atomic
    from workload.model.profile import RunningProfile
    from workload.spec import ModelSpec

    family = TICKETS if task == "multiclass" else DEMAND
    data = family.data_spec()
    messages = encode(family.generate(rows, seed=99), data)
    decoded = make_decoder(data, LabelRule(task))([m.key or b"" for m in messages],
                                                   [m.value for m in messages])
    profile = RunningProfile(data, task)
    profile.add(decoded)
    spec = ModelSpec.model_validate({"task": task, "layers": [{"dense": 16}]})
    write_keras_atomic(build_model(spec, data, profile.result()), path)


def evaluator_kills_for_task(bootstrap: str, work: Path, task: Task, rows: int = 6000,
                             chunk: int = 300, kills: int = 4,
                             seed: int = 20261206) -> list[Figure]:
    """Run the scenario for `task` on the broker at `bootstrap`; return its figures."""
    rng = random.Random(seed)
    family = TICKETS if task == "multiclass" else DEMAND
    data = family.data_spec()
    topic = f"faults-evaluate-{task}-{rng.randrange(1 << 30)}"
    connection = KafkaConnection(bootstrap)
    ensure_topic(connection, topic, 2)
    produce_messages(connection, topic, encode(family.generate(rows, seed=rng.randrange(1 << 30)),
                                               data), 2)
    artifacts = Artifacts(work / "out").prepare()
    save_untrained_model(artifacts.keras_model, task, 2000)

    def evaluation(group: str) -> list[str]:
        spec = job_spec(bootstrap, artifacts.root,
                        data=data.model_dump(mode="json", by_alias=True, exclude_none=True),
                        evaluate={"topic": topic, "consumerGroup": group, "streamTimeoutMs": 0})
        spec = spec.model_copy(update={"model": spec.model.model_copy(update={"task": task})})
        path = processes.spec_file(spec, work / f"{group}.json")
        return processes.command(processes.EVALUATE_CHILD, path, artifacts.root, chunk)

    calm = processes.run_to_end(evaluation("calm"), timeout_s=180)
    if calm.returncode != 0:
        raise RuntimeError(f"the uninterrupted evaluation failed:\n{calm.stdout[-2000:]}")
    reference = processes.read_json(artifacts.results("evaluate"))
    assert reference is not None

    group = "faulted"
    command = evaluation(group)
    ledger = artifacts.ledger(group)
    step = 2 * chunk
    targets = sorted(rng.sample(range(1, int(0.8 * rows) // step), kills))
    killed = []
    for target in targets:
        child = processes.start(command)
        covered = functools.partial(_covers, ledger, target * step)
        processes.wait_for(covered, child, 120, f"the evaluator to cover {target * step} records")
        time.sleep(rng.uniform(0.0, 0.01))
        killed.append(processes.sigkill(child))
    last = processes.run_to_end(command, timeout_s=180)
    measured = processes.read_json(artifacts.results("evaluate")) or {}
    ends = end_offsets(connection, topic)
    return _figures(task, measured, reference, ends, committed_offsets(bootstrap, group, topic),
                    killed, last.returncode)


def _covers(ledger: Path, records: int) -> bool:
    return ledger_progress(ledger) >= records


def _same(measured: Any, reference: Any) -> bool:
    """Equal, floats within `RELATIVE`."""
    if isinstance(reference, float) and isinstance(measured, float):
        return abs(measured - reference) <= RELATIVE * max(1.0, abs(reference))
    return bool(measured == reference)


def _figures(task: Task, measured: dict[str, Any], reference: dict[str, Any],
             ends: dict[int, int], committed: dict[int, int], killed: list[int],
             last_code: int) -> list[Figure]:
    name = scenario(task)
    records = sum(ends.values())
    count = int(measured.get("metrics", {}).get("recordsEvaluated", -1))
    figures = measured.get("figures", {})
    differ = [key for key in FIGURES[task]
              if not _same(figures.get(key), reference["figures"].get(key))]
    return [
        figure(name, "SIGKILLs mid-run", f"{len(killed)}", sum(code == -9 for code in killed),
               all(code == -9 for code in killed)),
        figure(name, "the last run finished", "exit 0", last_code, last_code == 0),
        figure(name, "records counted", f"{records} (end offsets)", count, count == records),
        figure(name, f"{', '.join(FIGURES[task])} equal the uninterrupted run's", "equal",
               "equal" if not differ else f"differ: {differ}", not differ),
        figure(name, "consumer group's committed offsets", f"= end offsets {ends}", committed,
               committed == ends),
    ]
