"""A training group: this worker's `MultiWorkerMirroredStrategy` and what the workers say to each other.

One trainer is a group of one (`Group.solo`): TensorFlow's default strategy
and collectives that return what they are given, so training is one loop
for both (`workload.modes.train_loop`).

Workers agree through all-reduces, never through files or clocks: a sum
over the group (`all_sum`), the chief's values sent to everyone (the others
add zeros: `from_chief`) and a barrier. A failure of any of these, or of a
training step, means a peer went away or the group was aborted: it becomes
`PeerLost`, the process exits with `PEER_LOST_EXIT` and the group restarts.

TensorFlow notes (measured with TF 2.16.2, Keras 3.15.1):
- the strategy must be made before any other TensorFlow op runs in the
  process (it configures the runtime's collectives);
- it waits (without limit) until every worker has joined;
- a worker killed mid-step is noticed by the others within about 10 s (the
  coordination service's heartbeat); their pending collective then fails
  with `UnavailableError`;
- float64 and int64 all-reduce exactly on CPU, so offsets and counts sum
  without rounding.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf

from workload.replica import SINGLE, TF_CONFIG_ENV, PeerLost, Replica

log = logging.getLogger(__name__)

PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.CancelledError,
               tf.errors.DeadlineExceededError, tf.errors.AbortedError,
               tf.errors.FailedPreconditionError, tf.errors.InternalError)
"""What a collective raises when a peer went away or the group's collectives were aborted."""

@contextmanager
def peers_needed(what: str) -> Iterator[None]:
    """Turn a collective's failure inside the block into `PeerLost`, saying what was going on."""
    try:
        yield
    except PEER_ERRORS as error:
        raise PeerLost(f"a worker of the group went away while {what}: "
                       f"{error.message.splitlines()[0]}") from error


@dataclass
class Group:
    """This worker's place in its group and the strategy that connects it."""

    replica: Replica
    strategy: tf.distribute.Strategy

    @classmethod
    def solo(cls) -> Group:
        """One trainer as a group of one: TensorFlow's default strategy, collectives that
        return what they are given."""
        return cls(SINGLE, tf.distribute.get_strategy())

    @property
    def chief(self) -> bool:
        """Worker 0."""
        return self.replica.chief

    @property
    def grouped(self) -> bool:
        """Whether there are other workers."""
        return self.replica.grouped

    def all_sum(self, arrays: Sequence[npt.NDArray[Any]],
                what: str = "agreeing") -> list[npt.NDArray[Any]]:
        """The element-wise sum of `arrays` over every worker (same shapes and dtypes on all)."""
        if not self.grouped:
            return [np.asarray(array) for array in arrays]
        tensors = [tf.constant(array) for array in arrays]

        def reduce() -> Any:
            context = tf.distribute.get_replica_context()
            return context.all_reduce(tf.distribute.ReduceOp.SUM, tensors)

        with peers_needed(what):
            summed = self.strategy.run(reduce)
            return [np.asarray(self.strategy.experimental_local_results(t)[0]) for t in summed]

    def from_chief(self, arrays: Sequence[npt.NDArray[Any]],
                   what: str = "agreeing") -> list[npt.NDArray[Any]]:
        """The chief's `arrays` on every worker (the others pass arrays of the same shapes)."""
        mine = [np.asarray(a) if self.chief else np.zeros_like(a) for a in arrays]
        return self.all_sum(mine, what)

    def gather(self, mine: bytes, what: str = "agreeing") -> list[bytes]:
        """Every worker's `mine`, in worker order (each worker passes its own bytes)."""
        workers, index = self.replica.count, self.replica.index
        sizes = np.zeros(workers, np.int64)
        sizes[index] = len(mine)
        (sizes,) = self.all_sum([sizes], what)
        edges = np.concatenate([[0], np.cumsum(sizes)])
        if not edges[-1]:
            return [b""] * workers
        buffer = np.zeros(int(edges[-1]), np.int32)  # collectives sum int32, not bytes
        buffer[edges[index]:edges[index + 1]] = np.frombuffer(mine, np.uint8)
        (buffer,) = self.all_sum([buffer], what)
        return [buffer[edges[worker]:edges[worker + 1]].astype(np.uint8).tobytes()
                for worker in range(workers)]

    def barrier(self, what: str) -> None:
        """Wait until every worker is here."""
        self.all_sum([np.zeros(1)], what)


def join_group(replica: Replica) -> Group:
    """Join the group described by `replica` (sets `TF_CONFIG`; waits for every worker)."""
    os.environ[TF_CONFIG_ENV] = json.dumps(replica.tf_config())
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING)
    log.info("worker %d of %d joins %s", replica.index, replica.count, ",".join(replica.workers))
    with peers_needed("the group formed"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    return Group(replica, strategy)
