"""What the workers of a training group agree on before they train (one trainer: itself).

Workers agree through the group's collectives (`workload.modes.group`), never
through files or clocks:
- `agreed_state`: the chief's checkpoint state (offsets, epoch, batch, early
  stop), or a new one on the bounds it captures now, on every worker;
- `group_summary`: what was read, summed (records, bad records by reason) and
  the training profile merged (feature statistics, categorical values,
  labels, target sums), so every worker builds the same model and takes the
  same decisions (too many bad records fails all).
A group of one (`Group.solo`) agrees with itself: its own figures, no
collective.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from workload.artifacts import Artifacts
from workload.data.decode import BAD_REASONS
from workload.identity import RunIdentity
from workload.kafka.bounds import partition_bounds
from workload.kafka.connection import KafkaConnection
from workload.model.profile import TrainingProfile, merge_profiles
from workload.model.statistics import FeatureStatistics, merge_statistics
from workload.modes.checkpoint import TrainState, load_own_state
from workload.modes.group import Group
from workload.modes.train_data import ReadSummary
from workload.replica import PeerLost
from workload.spec import DataSpec, StreamingTrainingJobSpec


def _no_statistics(width: int) -> FeatureStatistics:
    """The statistics of no row."""
    return FeatureStatistics(0, np.zeros(width), np.ones(width), np.zeros((0, width), np.float32))


def agreed_state(spec: StreamingTrainingJobSpec, identity: RunIdentity,
                  connection: KafkaConnection, artifacts: Artifacts,
                  group: Group) -> tuple[TrainState, str | None]:
    """The chief's checkpoint state (or a new one on bounds it captures now), on every worker."""
    assert spec.train is not None
    state, ignored, failed = None, None, np.zeros(1)
    if group.chief:
        try:
            state, ignored = load_own_state(artifacts.checkpoints, identity, group.replica.count)
            if state is None:
                state = TrainState(spec.train.topic, partition_bounds(connection, spec.train.topic),
                                   job_uid=identity.job_uid, spec_digest=identity.spec_digest,
                                   workers=group.replica.count)
        except Exception:
            group.from_chief([np.ones(1)], "the chief read its checkpoint")
            raise
    (failed,) = group.from_chief([np.zeros(1)], "the chief read its checkpoint")
    if failed[0]:
        raise PeerLost("worker 0 could not start the group (its report says why)")
    offsets = state.offsets if state is not None else {}
    (count,) = group.from_chief([np.array([len(offsets)], np.int64)])
    table = np.array([[p, start, stop] for p, (start, stop) in sorted(offsets.items())]
                     or np.zeros((0, 3)), np.int64).reshape(-1, 3)
    (agreed, position) = group.from_chief(
        [table if group.chief else np.zeros((int(count[0]), 3), np.int64),
         np.array([state.epochs_done, state.batches_done, state.stopped_early] if state
                  else [0, 0, 0], np.int64)])
    if state is None:
        state = TrainState(spec.train.topic, {}, job_uid=identity.job_uid,
                           spec_digest=identity.spec_digest, workers=group.replica.count)
    state.offsets = {int(p): (int(start), int(stop)) for p, start, stop in agreed}
    state.epochs_done, state.batches_done = int(position[0]), int(position[1])
    state.stopped_early = bool(position[2])
    return state, ignored


def group_summary(mine: ReadSummary, held: ReadSummary, data: DataSpec,
                   group: Group) -> tuple[ReadSummary, TrainingProfile]:
    """The group's read figures (every worker gets the same): counts summed, the training
    profile merged as one trainer reading every worker's records would have it; and the
    profile of the group's held-out labels. One trainer's are its own."""
    if group.replica.count == 1:
        return mine, held.profile or TrainingProfile(_no_statistics(len(data.numeric_names)))
    n_features = len(data.numeric_names)
    workers, index = group.replica.count, group.replica.index
    empty = _no_statistics(n_features)
    profile = mine.profile or TrainingProfile(empty)
    own = profile.statistics
    counts = np.array([mine.records, mine.good,
                       *(mine.bad_by_reason.get(reason, 0) for reason in BAD_REASONS)], np.int64)
    moments = np.zeros((workers, 1 + 2 * n_features))
    moments[index] = np.concatenate([[own.rows], own.mean, own.variance])
    sizes = np.zeros(workers, np.int64)
    sizes[index] = len(own.sample)
    total_counts, moments, sizes = group.all_sum([counts, moments, sizes],
                                                 "summing what was read")
    first = int(sizes[:index].sum())
    samples = np.zeros((int(sizes.sum()), n_features), np.float32)
    samples[first:first + len(own.sample)] = own.sample
    (samples,) = group.all_sum([samples], "sharing the row samples")
    edges = np.concatenate([[0], np.cumsum(sizes)])
    statistics = merge_statistics([
        FeatureStatistics(int(row[0]), row[1:1 + n_features], row[1 + n_features:],
                          samples[edges[worker]:edges[worker + 1]])
        for worker, row in enumerate(moments)])
    held_labels = held.profile.labels if held.profile is not None else {}
    shared = json.dumps({"values": profile.values, "labels": profile.labels,
                         "target": profile.target, "held": held_labels}).encode()
    parts = [json.loads(part) for part in group.gather(shared, "sharing the values seen")]
    whole = replace(merge_profiles([TrainingProfile(empty, part["values"], part["labels"],
                                                    tuple(part["target"])) for part in parts]),
                    statistics=statistics)
    held_whole = merge_profiles([TrainingProfile(empty, {}, part["held"]) for part in parts])
    summary = ReadSummary(records=int(total_counts[0]), good=int(total_counts[1]),
                          bad_by_reason={reason: int(count) for reason, count
                                         in zip(BAD_REASONS, total_counts[2:], strict=True)
                                         if count}, profile=whole)
    return summary, held_whole
