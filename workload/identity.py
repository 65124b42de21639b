"""Whose saved state is this? A job's uid and a digest of what shapes its data and model.

A trainer's checkpoint and an evaluator's ledger are resumed from only when
they were written by the same job (its Kubernetes uid, handed to the pod in
`workload.contract.JOB_UID_ENV`) with the same settings for the data and the model
(`spec_digest`). Anything else found in the output folder, say a checkpoint
of another job that shared the volume, or of this job's earlier run with
other layers, is ignored with a warning; the phase starts from the
beginning. No TensorFlow here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workload.spec import StreamingTrainingJobSpec, dump_spec

LOCAL_UID_PREFIX = "local:"
"""A local run has no uid; it is named `local:<job name>`, so rerunning a job resumes it."""

NEUTRAL_FIELDS: dict[str, frozenset[str]] = {
    "data": frozenset({"deadLetterTopic", "maxBadRecordsRatio"}),
    "train": frozenset({"epochs", "checkpointEverySeconds", "partitions"}),
    "model": frozenset({"output"}),
}
"""Fields of the digested sections that change neither the records a model learns from nor
the model itself: where bad records go, when to checkpoint, where files are written, and how
many epochs (a run resumed with more epochs goes on training the same model)."""

LATER_DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {"maxTokens": 1000},
    "model": {"task": "binary"},
}
"""Fields added after the first release, left out of the digest while they hold their default:
a job's digest, and so its checkpoints and ledgers, stay the same across that upgrade."""

DIGESTED_SECTIONS = ("data", "train", "model")
"""Spec sections that shape the data and the model: what a resumed run must share."""


def spec_digest(spec: StreamingTrainingJobSpec) -> str:
    """SHA-256 of the spec's data, train and model settings, without `NEUTRAL_FIELDS`."""
    document = dump_spec(spec)
    shaping: dict[str, Any] = {}
    for section in DIGESTED_SECTIONS:
        value = document.get(section)
        if isinstance(value, Mapping):
            later = LATER_DEFAULTS.get(section, {})
            value = {key: item for key, item in value.items()
                     if key not in NEUTRAL_FIELDS.get(section, frozenset())
                     and not (key in later and later[key] == item)}
        shaping[section] = value
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class RunIdentity:
    """The job a phase runs for, as saved beside its checkpoints and ledgers."""

    job_uid: str
    spec_digest: str

    @classmethod
    def of(cls, name: str, spec: StreamingTrainingJobSpec, uid: str | None) -> RunIdentity:
        """The identity of job `name` (uid `None` for a local run)."""
        return cls(uid or f"{LOCAL_UID_PREFIX}{name}", spec_digest(spec))

    def mismatch(self, job_uid: str | None, digest: str | None) -> str | None:
        """Why state saved with (`job_uid`, `digest`) is not this run's, or `None` if it is."""
        if not job_uid:
            return "it names no job (written by an older version)"
        if job_uid != self.job_uid:
            return f"it belongs to job uid {job_uid}, this job is {self.job_uid}"
        if digest != self.spec_digest:
            return (f"it was written with other data, train or model settings "
                    f"(spec digest {str(digest)[:12]}, now {self.spec_digest[:12]})")
        return None
