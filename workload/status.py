"""What pods report and what the operator writes in `status`: shared, TensorFlow-free.

A pod's final figures travel through its container termination message
(Kubernetes' own channel: the kubelet copies `/dev/termination-log` into the
pod status, at most 4 KiB). `PodReport` is that message's schema; the
workload writes it, the operator reads it into `StreamingTrainingJobStatus`.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from workload.contract import PERMANENT, FailureReason, Mode, Phase

TERMINATION_MESSAGE_LIMIT = 4096
"""Bytes the kubelet keeps of a termination message."""


class StatusModel(BaseModel):
    """camelCase on the wire, tolerant of fields written by newer versions."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore",
        use_attribute_docstrings=True,
    )


class Metrics(StatusModel):
    """Model quality and data figures, as the pods reported them."""

    train_loss: float | None = None
    """Training loss of the exported epoch (the last, or the best with early stopping)."""
    train_accuracy: float | None = None
    """Training accuracy of the exported epoch (0-1)."""
    validation_loss: float | None = None
    """Loss on the held-out validation slice, at the exported epoch."""
    validation_accuracy: float | None = None
    """Accuracy on the held-out validation slice, at the exported epoch (0-1)."""
    eval_loss: float | None = None
    """Binary cross-entropy on the evaluation topic."""
    eval_accuracy: float | None = None
    """Accuracy on the evaluation topic (0-1)."""
    eval_auc: float | None = None
    """ROC AUC on the evaluation topic (0-1)."""
    online_accuracy: float | None = None
    """Prequential (test-then-train) accuracy of online learning (0-1)."""
    records_trained: int | None = None
    """Distinct records the trainer learned from (one epoch's worth)."""
    records_validated: int | None = None
    """Distinct records held out for validation (read, never trained on)."""
    epochs_trained: int | None = None
    """Epochs the trainer completed."""
    records_evaluated: int | None = None
    """Records scored, each exactly once."""
    records_online: int | None = None
    """Records learned online."""
    bad_records: int | None = None
    """Malformed records set aside (not scored, not trained on)."""
    bad_records_by_reason: dict[str, int] | None = None
    """Malformed records by reason (as in their dead letters' `streamtrain.reason`), e.g. `{"empty": 3}`."""


class PodReport(StatusModel):
    """A pod's final word: its mode, figures, model location or failure reason."""

    mode: Mode
    """Which phase the pod ran."""
    ok: bool
    """Whether the phase completed."""
    message: str = ""
    """Why it failed, in one sentence (empty on success); the traceback stays in the log."""
    reason: FailureReason | None = None
    """The cause of a failure no retry can fix (`contract.PERMANENT_FAILURES`); none for one
    that another pod may not meet. A reason this version does not know reads as none (a report
    comes from a pod, which the operator does not trust)."""
    metrics: Metrics = Field(default_factory=Metrics)
    """Figures of this phase."""
    model_uri: str | None = None
    """Where the model was written."""
    epoch: int | None = None
    """Epochs completed (train)."""
    records_per_second: float | None = None
    """Throughput of the phase."""
    preprocessing: str | None = None
    """How the trained model prepares raw features (train), e.g. `robust: 9 standardize, 9
    signed-log`."""
    resume_ignored: str | None = None
    """Why a checkpoint or ledger found in the output folder was not resumed from (it belongs
    to another job, or to other data or model settings)."""

    def to_message(self) -> str:
        """Compact JSON within the kubelet's 4 KiB limit (the message is shortened first)."""
        text = self.model_dump_json(by_alias=True, exclude_none=True)
        overflow = len(text.encode()) - TERMINATION_MESSAGE_LIMIT
        if overflow > 0:
            clipped = self.message.encode()[: max(0, len(self.message.encode()) - overflow - 3)]
            shorter = self.model_copy(update={"message": clipped.decode(errors="ignore") + "..."})
            text = shorter.model_dump_json(by_alias=True, exclude_none=True)
        return text

    @field_validator("reason", mode="before")
    @classmethod
    def _known_reason(cls, reason: object) -> object:
        return reason if isinstance(reason, str) and reason in PERMANENT else None

    @classmethod
    def from_message(cls, text: str) -> PodReport | None:
        """Parse a termination message; `None` when it is not a report (e.g. a crash trace)."""
        try:
            return cls.model_validate(json.loads(text))
        except (ValueError, TypeError):
            return None


class Condition(StatusModel):
    """A Kubernetes-style condition."""

    type: Literal["Ready", "Training", "Evaluated", "Online", "Failed", "Suspended", "Queued",
                  "KafkaReady", "ModelSourceReady"]
    """What the condition is about."""
    status: Literal["True", "False", "Unknown"]
    """Whether it holds."""
    reason: str
    """One CamelCase word for machines."""
    message: str = ""
    """A sentence for people."""
    last_transition_time: str
    """When `status` last changed (RFC 3339)."""
    observed_generation: int | None = None
    """The spec generation this condition was computed from."""


class RoleStatus(StatusModel):
    """The child Job of one phase."""

    job: str | None = None
    """Name of the batch/v1 Job."""
    replicas: int = 1
    """Pods the phase runs (`spec.trainer` / `spec.evaluator` replicas); it is done when that
    many have succeeded."""
    active: int = 0
    """Pods running."""
    succeeded: int = 0
    """Pods that completed."""
    failed: int = 0
    """Pods that failed."""


class ProgressReport(StatusModel):
    """What a pod posts to the operator's progress endpoint while its phase runs."""

    mode: Mode
    """The phase the pod runs."""
    records: int = Field(ge=0)
    """Records done in this phase (train: over every epoch so far)."""
    records_total: int | None = Field(None, ge=0)
    """Records the phase will have done when it ends (absent when unbounded: online)."""
    epoch: int | None = Field(None, ge=0)
    """Epochs completed (train)."""
    epochs: int | None = Field(None, ge=1)
    """Epochs the phase runs (train)."""
    records_per_second: float | None = Field(None, ge=0)
    """Recent throughput."""
    percent: float | None = Field(None, ge=0, le=100)
    """Share of `recordsTotal` done (0-100)."""
    eta_seconds: int | None = Field(None, ge=0)
    """Seconds left at the recent throughput."""
    loss: float | None = None
    """Running loss (train, evaluate)."""
    accuracy: float | None = None
    """Running accuracy (0-1); online: prequential (test-then-train)."""
    auc: float | None = None
    """Running ROC AUC (0-1; evaluate)."""


class Progress(ProgressReport):
    """Where the running phase is, as its pod last reported (while it runs; final when it ends)."""

    mode: Mode | None = None  # type: ignore[assignment]
    """The phase the figures are of."""
    records: int | None = None  # type: ignore[assignment]
    """Records done in this phase (train: over every epoch so far)."""

    last_update_time: str | None = None
    """When the pod last reported (RFC 3339)."""
    last_progress_time: str | None = None
    """When the records or the epoch last grew (RFC 3339): what
    `runPolicy.progressDeadlineSeconds` measures."""


class ModelStatus(StatusModel):
    """The exported model."""

    uri: str | None = None
    """Where it is."""
    saved_at: str | None = None
    """When it was written (RFC 3339)."""
    preprocessing: str | None = None
    """How the model prepares raw features, e.g. `robust: 9 standardize, 9 signed-log`."""


class StreamingTrainingJobStatus(StatusModel):
    """What the operator observed; written only through the status subresource."""

    phase: Phase = "Pending"
    """Where the job is in its life: Pending, Queued (its phase's Job waits for Kueue to admit
    it), Training, Evaluating, Online, Succeeded, Failed or Suspended."""
    reason: str | None = None
    """Why, in one CamelCase word, when the phase needs one: the failure's reason while Failed
    (e.g. `BackoffLimitExceeded`, `ProgressDeadlineExceeded`, `KafkaUnreachable`), what the job
    waits for while Pending (e.g. `KafkaNotReady`) or Queued (`WaitingForAdmission`)."""
    conditions: list[Condition] = Field(default_factory=list)
    """Latest observations, one per type."""
    observed_generation: int | None = None
    """The spec generation the status reflects."""
    start_time: str | None = None
    """When the first pod was started."""
    completion_time: str | None = None
    """When the job reached Succeeded or Failed."""
    bootstrap_servers: str | None = None
    """The Kafka address in use (resolved from `clusterRef` or copied from the spec)."""
    trainer: RoleStatus | None = None
    """The training phase's Job."""
    evaluator: RoleStatus | None = None
    """The evaluation phase's Job."""
    online: RoleStatus | None = None
    """The online phase's Job."""
    progress: Progress | None = None
    """Where the work is."""
    metrics: Metrics | None = None
    """Figures reported by the pods."""
    model: ModelStatus | None = None
    """The exported model."""
