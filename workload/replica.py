"""A process's place among the replicas of its phase, and the TF_CONFIG of a training worker.

A phase with `replicas: N` (`spec.trainer` / `spec.evaluator`) runs N
processes: the pods of an Indexed Job in a cluster, N local processes for
`streamtrain run`. Each learns its index from `WORKER_INDEX_ENV` (Kubernetes
sets it in every pod of an Indexed Job) and, for training, the address of
every worker from `WORKERS_ENV`; a training worker turns both into the
`TF_CONFIG` that `tf.distribute.MultiWorkerMirroredStrategy` reads, as
Kubeflow's TFJob does. Replica 0 is the chief. No TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workload.contract import MODE, WORKER_INDEX_ENV, WORKERS_ENV, Mode
from workload.spec import StreamingTrainingJobSpec

TF_CONFIG_ENV = "TF_CONFIG"
"""TensorFlow's own variable: the cluster and this task's place in it."""


class ReplicaError(ValueError):
    """The environment does not say which replica this process is."""


class PeerLost(RuntimeError):
    """This worker stops because its group cannot go on without another worker (one went away,
    or the chief stopped the group); the process exits with `PEER_LOST_EXIT` and the group
    restarts from the chief's last checkpoint."""


@dataclass(frozen=True)
class Replica:
    """Which of its phase's replicas this process is."""

    index: int = 0
    count: int = 1
    workers: tuple[str, ...] = ()
    """`host:port` of every training worker, in index order (training groups only)."""

    @property
    def chief(self) -> bool:
        """Replica 0: writes checkpoints, the export and the phase's results."""
        return self.index == 0

    @property
    def grouped(self) -> bool:
        """Whether the phase runs several replicas."""
        return self.count > 1

    def tf_config(self) -> dict[str, Any]:
        """The `TF_CONFIG` of this training worker."""
        return {"cluster": {"worker": list(self.workers)},
                "task": {"type": "worker", "index": self.index}}


SINGLE = Replica()
"""The one replica of a phase with `replicas: 1`."""


def replicas_of(mode: Mode, spec: StreamingTrainingJobSpec) -> int:
    """How many replicas run `mode` (the replicas of its pod template)."""
    count: int = getattr(spec, MODE[mode].template).replicas
    return count


def replica_for(mode: Mode, spec: StreamingTrainingJobSpec,
                environ: Mapping[str, str]) -> Replica:
    """This process's replica of `mode`, from the environment (`SINGLE` for one replica, and for
    serving, whose replicas are not numbered: `contract.SERVE_REPLICA_ENV` names them)."""
    count = replicas_of(mode, spec)
    if count == 1 or not MODE[mode].phase_of_run:
        return SINGLE
    template = MODE[mode].template
    text = environ.get(WORKER_INDEX_ENV, "")
    if not text.strip().isdigit() or not 0 <= int(text) < count:
        raise ReplicaError(f"{WORKER_INDEX_ENV} must be this replica's index, 0 to {count - 1} "
                           f"(spec.{template}.replicas is {count}), got {text!r}")
    workers: tuple[str, ...] = ()
    if mode == "train":
        workers = tuple(address.strip() for address in environ.get(WORKERS_ENV, "").split(",")
                        if address.strip())
        if len(workers) != count:
            raise ReplicaError(f"{WORKERS_ENV} must list the {count} workers' host:port "
                               f"(spec.trainer.replicas), got {environ.get(WORKERS_ENV)!r}")
    return Replica(int(text), count, workers)
