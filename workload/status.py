"""What pods report and what the operator writes in `status`: shared, TensorFlow-free.

A pod's final figures travel through its container termination message
(Kubernetes' own channel: the kubelet copies `/dev/termination-log` into the
pod status, at most 4 KiB). `PodReport` is that message's schema; the
workload writes it, the operator reads it into `StreamingTrainingJobStatus`.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from workload.contract import PERMANENT, FailureReason, Mode, Phase
from workload.spec import MAX_EPOCHS

TERMINATION_MESSAGE_LIMIT = 4096
"""Bytes the kubelet keeps of a termination message."""

# ---------------------------------------------------------------- the range of every figure
# What a pod writes (a progress post, a termination message) is untrusted: each figure is
# declared with its range here, so one out of range, or not a finite number, never reaches
# status. The same bounds become `minimum`/`maximum` in the CRD's status schema.

RECORDS_LIMIT = 2**53 - 1
"""Most records a figure may count: the largest integer JSON carries exactly (a stream of a
million records per second would need 285 years to reach it)."""

RATE_LIMIT = 1e9
"""Most records per second a figure may claim (a thousand times what one pod reads here)."""

SECONDS_LIMIT = 10 * 365 * 24 * 3600
"""Most seconds an estimate of the time left may say (ten years)."""

LOSS_LIMIT = 1e12
"""Largest loss a figure may carry (cross-entropy is a few units; room for squared errors)."""

Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
"""A share, 0-1 (accuracy, AUC)."""
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
"""A share, 0-100."""
Loss = Annotated[float, Field(ge=0, le=LOSS_LIMIT, allow_inf_nan=False)]
"""A loss (non-negative)."""
Rate = Annotated[float, Field(ge=0, le=RATE_LIMIT, allow_inf_nan=False)]
"""Records per second."""
Count = Annotated[int, Field(ge=0, le=RECORDS_LIMIT)]
"""A number of records."""
Seconds = Annotated[int, Field(ge=0, le=SECONDS_LIMIT)]
"""A duration in whole seconds."""
EpochCount = Annotated[int, Field(ge=0, le=MAX_EPOCHS)]
"""A number of epochs."""
LabelError = Annotated[float, Field(ge=0, le=LOSS_LIMIT, allow_inf_nan=False)]
"""An error in the label's units (RMSE, MAE; non-negative), or an accuracy as a headline."""
Determination = Annotated[float, Field(ge=-LOSS_LIMIT, le=1, allow_inf_nan=False)]
"""A coefficient of determination R² (at most 1; below 0 when worse than the mean)."""


MODEL_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
"""A model version's characters (e.g. `trained-3fa2c19b0d4e`)."""

MODEL_VERSION_LENGTH = 80
"""A model version's length at most."""


class StatusModel(BaseModel):
    """camelCase on the wire, tolerant of fields written by newer versions."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore",
        use_attribute_docstrings=True,
    )


class BadRecords(StatusModel):
    """Malformed records of one phase: set aside (dead-lettered), neither scored nor trained on."""

    records: Count = 0
    """How many."""
    by_reason: dict[str, Count] = Field(default_factory=dict)
    """How many by reason (as in their dead letters' `streamtrain.reason`), e.g. `{"empty": 3}`."""


class Metrics(StatusModel):
    """Model quality and data figures, as the pods reported them.

    A figure that is not a number (a diverged loss) is absent, as JSON has no NaN; one out of
    its range is refused (`PodReport.from_message` drops it from a pod's report)."""

    train_loss: Loss | None = None
    """Training loss of the exported epoch (the last, or the best with early stopping)."""
    train_accuracy: Fraction | None = None
    """Training accuracy of the exported epoch (0-1)."""
    validation_loss: Loss | None = None
    """Loss on the held-out validation slice, at the exported epoch."""
    validation_accuracy: Fraction | None = None
    """Accuracy on the held-out validation slice, at the exported epoch (0-1)."""
    train_rmse: LabelError | None = None
    """Regression: training RMSE of the exported epoch (the label's units)."""
    validation_rmse: LabelError | None = None
    """Regression: RMSE on the held-out validation slice, at the exported epoch."""
    eval_loss: Loss | None = None
    """Log loss (cross-entropy) on the evaluation topic (classification)."""
    eval_accuracy: Fraction | None = None
    """Accuracy on the evaluation topic (0-1; classification)."""
    eval_auc: Fraction | None = None
    """ROC AUC on the evaluation topic (0-1; binary)."""
    eval_macro_f1: Fraction | None = None
    """Macro-averaged F1 on the evaluation topic (0-1; multiclass): the mean F1 of the classes
    that occur as a label or a prediction."""
    eval_rmse: LabelError | None = None
    """Root mean squared error on the evaluation topic (regression; the label's units)."""
    eval_mae: LabelError | None = None
    """Mean absolute error on the evaluation topic (regression; the label's units)."""
    eval_r2: Determination | None = None
    """Coefficient of determination R² on the evaluation topic (regression; 1 is perfect)."""
    eval_metric: Literal["accuracy", "rmse"] | None = None
    """The task's headline metric: `accuracy` (binary, multiclass) or `rmse` (regression)."""
    eval_value: LabelError | None = None
    """The headline metric's value on the evaluation topic (what `kubectl get stj` shows)."""
    online_accuracy: Fraction | None = None
    """Prequential (test-then-train) accuracy of online learning (0-1; classification)."""
    online_rmse: LabelError | None = None
    """Prequential (test-then-train) RMSE of online learning (regression; the label's units)."""
    records_trained: Count | None = None
    """Distinct records the trainer learned from (one epoch's worth)."""
    records_validated: Count | None = None
    """Distinct records held out for validation (read, never trained on)."""
    epochs_trained: EpochCount | None = None
    """Epochs the trainer completed."""
    records_evaluated: Count | None = None
    """Records scored, each exactly once."""
    records_online: Count | None = None
    """Records learned online."""
    records_served: Count | None = None
    """Predictions written to the serving output topic, one per good input record."""
    bad_records: Count | None = None
    """Malformed records set aside (not scored, not trained on): in a pod's report, its phase's;
    in status, every phase's together."""
    bad_records_by_reason: dict[str, Count] | None = None
    """Malformed records by reason (as in their dead letters' `streamtrain.reason`), e.g.
    `{"empty": 3}`: in a pod's report, its phase's; in status, every phase's together."""
    bad_records_by_phase: dict[Mode, BadRecords] | None = None
    """Malformed records of each phase that reported (status only), e.g. `{"train": {"records":
    55, "byReason": {...}}, "evaluate": {...}}`."""

    @model_validator(mode="before")
    @classmethod
    def _not_a_number_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: None if isinstance(value, float) and not math.isfinite(value) else value
                    for key, value in data.items()}
        return data


def with_headline(metrics: Metrics) -> Metrics:
    """`metrics` with the evaluation's headline (`evalMetric`, `evalValue`) filled in from its
    figures when a report did not say it (a pod of a version before tasks): RMSE when there
    is one, else accuracy."""
    if metrics.eval_value is not None:
        return metrics
    if metrics.eval_rmse is not None:
        return metrics.model_copy(update={"eval_metric": "rmse", "eval_value": metrics.eval_rmse})
    if metrics.eval_accuracy is not None:
        return metrics.model_copy(update={"eval_metric": "accuracy",
                                          "eval_value": metrics.eval_accuracy})
    return metrics


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
    epoch: EpochCount | None = None
    """Epochs completed (train)."""
    records_per_second: Rate | None = None
    """Throughput of the phase."""
    preprocessing: str | None = None
    """How the trained model prepares raw features (train), e.g. `robust: 9 standardize, 9
    signed-log`."""
    classes: list[str] | None = None
    """Multiclass (train): the model's classes in output order (left out of the message when
    too many to fit; the results file keeps them)."""
    resume_ignored: str | None = None
    """Why a checkpoint or ledger found in the output folder was not resumed from (it belongs
    to another job, or to other data or model settings)."""

    def to_message(self) -> str:
        """Compact JSON within the kubelet's 4 KiB limit (the message is shortened first)."""
        text = self.model_dump_json(by_alias=True, exclude_none=True)
        if len(text.encode()) > TERMINATION_MESSAGE_LIMIT and self.classes is not None:
            return self.model_copy(update={"classes": None}).to_message()
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
        """Parse a termination message; `None` when it is not a report (e.g. a crash trace).

        A figure out of its range is dropped, and the rest of the report stands: the pod's
        phase still counts as done, but the figure never reaches status."""
        try:
            data = json.loads(text)
        except (ValueError, TypeError):
            return None
        if not isinstance(data, dict):
            return None
        for _ in range(len(data) + len(data.get("metrics") or {}) + 1):
            try:
                return cls.model_validate(data)
            except ValidationError as error:
                if not _drop_invalid_figures(data, error):
                    return None
        return None


class Condition(StatusModel):
    """A Kubernetes-style condition."""

    type: Literal["Ready", "Training", "Evaluated", "Online", "Serving", "Failed", "Suspended",
                  "Queued", "KafkaReady", "ModelSourceReady"]
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


RECENT_DECISIONS = 10
"""Promotion decisions a learner's post carries at most (the latest)."""


class PromotionReport(StatusModel):
    """The online learner's latest promotion decision, as it posts it live."""

    decisions: int = Field(ge=1)
    """Decisions made so far by this learner (each one an Event)."""
    promotions: int = Field(ge=0)
    """Of which promotions (the rest were rejections)."""
    promoted: bool
    """Whether the challenger became the served model."""
    version: str | None = Field(None, max_length=MODEL_VERSION_LENGTH,
                                pattern=MODEL_VERSION_PATTERN)
    """The version served after the decision."""
    metric: Literal["accuracy", "rmse"]
    """What the scores measure."""
    challenger_score: float
    """The challenger's score on the compared records."""
    serving_score: float
    """The serving model's score on the same records."""
    records: int = Field(ge=0)
    """Records compared."""
    why: str = Field("", max_length=500)
    """The figures that decided it, in one sentence."""


class ServingStatus(StatusModel):
    """The serving pods and the model they serve."""

    deployment: str | None = None
    """Name of the apps/v1 Deployment that runs them."""
    replicas: int = 1
    """Serving pods asked for (`spec.serve.replicas`)."""
    ready_replicas: int = 0
    """Serving pods running and ready."""
    version: str | None = None
    """The model version the replicas serve (named in every prediction)."""
    since: str | None = None
    """When that version started serving (RFC 3339)."""
    runtime: str | None = None
    """What scores it: `litert` (no TensorFlow in the pods), or `tensorflow (<why not
    LiteRT>)`, e.g. a model that did not convert."""
    records_served: Count | None = None
    """Predictions written so far (the replicas' committed transactions)."""
    promotions: int | None = None
    """Challengers promoted so far (online learning beside serving)."""
    rejections: int | None = None
    """Challengers that did not beat the serving model."""
    last_decision: PromotionReport | None = None
    """The latest comparison: both scores, on how many records, and why."""


class ProgressFigures(StatusModel):
    """The live figures of a running phase, each within its range."""

    records_total: Count | None = None
    """Records the phase will have done when it ends (absent when unbounded: online)."""
    epoch: EpochCount | None = None
    """Epochs completed (train)."""
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] | None = None
    """Epochs the phase runs (train)."""
    records_per_second: Rate | None = None
    """Recent throughput."""
    percent: Percent | None = None
    """Share of `recordsTotal` done (0-100)."""
    eta_seconds: Seconds | None = None
    """Seconds left at the recent throughput."""
    loss: Loss | None = None
    """Running loss (train, evaluate)."""
    accuracy: Fraction | None = None
    """Running accuracy (0-1); online: prequential (test-then-train)."""
    auc: Fraction | None = None
    """Running ROC AUC (0-1; evaluate)."""
    model_version: str | None = Field(None, max_length=MODEL_VERSION_LENGTH,
                                      pattern=MODEL_VERSION_PATTERN)
    """The model version the pod serves (serve: `records` are its predictions committed since
    it started)."""
    runtime: str | None = Field(None, max_length=300)
    """What scores the served model (serve): `litert`, or `tensorflow (<why not LiteRT>)`."""
    promotions: list[PromotionReport] | None = Field(None, max_length=RECENT_DECISIONS)
    """The learner's latest promotion decisions, oldest first (online beside serve): each
    becomes an Event once, however many happened between two posts."""


class ProgressReport(ProgressFigures):
    """What a pod posts to the operator's progress endpoint while its phase runs: every figure
    in its range, finite, records within their total and the epoch within the epochs."""

    mode: Mode
    """The phase the pod runs."""
    records: Count
    """Records done in this phase (train: over every epoch so far)."""

    @model_validator(mode="after")
    def _within_totals(self) -> Self:
        if self.records_total is not None and self.records > self.records_total:
            raise PydanticCustomError(
                "records_beyond_total", "records: {records} is more than recordsTotal {total}",
                {"records": self.records, "total": self.records_total})
        if self.epoch is not None and self.epochs is not None and self.epoch > self.epochs:
            raise PydanticCustomError(
                "epoch_beyond_epochs", "epoch: {epoch} is more than epochs {epochs}",
                {"epoch": self.epoch, "epochs": self.epochs})
        return self


class Progress(ProgressFigures):
    """Where the running phase is, as its pods last reported (while it runs; final when it ends)."""

    mode: Mode | None = None
    """The phase the figures are of."""
    records: Count | None = None
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
    classes: list[str] | None = None
    """Multiclass: the model's classes in output order (learned from the training range when
    `spec.model.classes` is absent)."""


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
    serving: ServingStatus | None = None
    """The serving pods and the model they serve."""
    progress: Progress | None = None
    """Where the work is."""
    metrics: Metrics | None = None
    """Figures reported by the pods."""
    model: ModelStatus | None = None
    """The exported model."""


def _drop_invalid_figures(data: dict[str, Any], error: ValidationError) -> bool:
    """Remove from a report's raw `data` each figure `error` names (a metric, or an optional
    figure of the report itself); `False` when an error is about something that cannot go
    (`mode`, `ok`, the shape of the report)."""
    dropped = False
    for problem in error.errors():
        location = problem["loc"]
        if len(location) >= 2 and location[0] == "metrics" and isinstance(data.get("metrics"),
                                                                          dict):
            dropped = data["metrics"].pop(str(location[1]), None) is not None or dropped
        elif len(location) >= 1 and location[0] not in ("mode", "ok", "metrics"):
            dropped = data.pop(str(location[0]), None) is not None or dropped
        else:
            return False
    return dropped
