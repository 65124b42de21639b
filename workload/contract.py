"""The contract between the operator and its pods, declared once and imported by both sides.

- The mode table: each mode (a phase of a job run by a child Job, or the
  long-running `serve`, run by a Deployment) with the status phase it shows,
  the pod template of the spec it runs with, the status field that records
  its child and the condition that tracks it. Every other list of modes is
  derived from it.
- The environment the operator sets on a pod and the paths it mounts there.
- How the replicas of a phase find each other (`replicas` > 1).
- How a pod ends: its exit code, and the failures no retry can fix
  (`PERMANENT_FAILURES`: each reason with its exit code, on which the child
  Job fails at once).
- The progress channel: where a pod posts its live figures, the token it
  proves itself with, and how often.

Importing this module imports nothing but the standard library, so the
operator (which never imports TensorFlow) and the workload share it freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

API_GROUP = "streamtrain.dev"
"""The API group of `StreamingTrainingJob` (also the prefix of the operator's labels)."""

Mode = Literal["train", "evaluate", "online", "serve"]
Phase = Literal["Pending", "Queued", "Training", "Evaluating", "Online", "Serving", "Succeeded",
                "Failed", "Suspended"]
PodTemplate = Literal["trainer", "evaluator", "serve"]
StatusField = Literal["trainer", "evaluator", "online", "serving"]
ModeCondition = Literal["Training", "Evaluated", "Online", "Serving"]
Workload = Literal["Job", "Deployment"]


@dataclass(frozen=True)
class ModeRow:
    """One mode: how it shows in status and which pod template runs it."""

    mode: Mode
    """The mode's name: the spec section that asks for it and `streamtrain run-mode <mode>`."""
    phase: Phase
    """`status.phase` while its pods run."""
    template: PodTemplate
    """The spec's pod template (`spec.trainer` or `spec.evaluator`) its pods are made from."""
    status_field: StatusField
    """The status field that records its child Job (`status.trainer`, ...)."""
    condition: ModeCondition
    """The condition type that tracks it."""
    condition_while_running: bool
    """Whether the condition holds while the mode runs (`Training`) or once it is done
    (`Evaluated`)."""
    done_reason: str
    """The condition's reason once the mode completed."""
    runs_as: Workload = "Job"
    """The Kubernetes object that runs its pods: a `Job` runs to completion, one phase after
    another; a `Deployment` runs until the job is deleted, beside the phases (`serve`)."""

    @property
    def phase_of_run(self) -> bool:
        """Whether the mode is one of the job's phases, run one after another to completion."""
        return self.runs_as == "Job"


MODE_TABLE: tuple[ModeRow, ...] = (
    ModeRow("train", "Training", "trainer", "trainer", "Training", True, "TrainingSucceeded"),
    ModeRow("evaluate", "Evaluating", "evaluator", "evaluator", "Evaluated", False,
            "EvaluationSucceeded"),
    ModeRow("online", "Online", "trainer", "online", "Online", True, "OnlineSucceeded"),
    ModeRow("serve", "Serving", "serve", "serving", "Serving", True, "ServingStopped",
            runs_as="Deployment"),
)
"""Every mode, in the order a job starts them (`serve` starts once there is a model to serve)."""

MODES: tuple[Mode, ...] = tuple(row.mode for row in MODE_TABLE)
PHASE_MODES: tuple[Mode, ...] = tuple(row.mode for row in MODE_TABLE if row.phase_of_run)
"""The modes run one after another to completion (child Jobs)."""
MODE: dict[Mode, ModeRow] = {row.mode: row for row in MODE_TABLE}
PHASES: tuple[Phase, ...] = get_args(Phase)
TERMINAL_PHASES: frozenset[Phase] = frozenset({"Succeeded", "Failed"})

# ---------------------------------------------------------------- environment

JOB_SPEC_ENV = "STREAMTRAIN_JOB_SPEC"
"""The job's spec as JSON (camelCase, defaults filled in): what `streamtrain run-mode` reads."""

JOB_NAME_ENV = "STREAMTRAIN_JOB_NAME"
"""The StreamingTrainingJob's name (the workload uses it in logs and artefact names)."""

JOB_UID_ENV = "STREAMTRAIN_JOB_UID"
"""The StreamingTrainingJob's `metadata.uid`: a pod resumes only checkpoints and ledgers that
carry it (`workload.identity`)."""

OUTPUT_URI_ENV = "STREAMTRAIN_OUTPUT_URI"
"""How the pod's output folder is named outside the pod (`pvc://<claim>/<folder>`); reports
name the model by it, and `status.model.uri` shows it."""

MODEL_SOURCE_ENV = "STREAMTRAIN_MODEL_SOURCE"
"""The folder where the model of `spec.model.source` is mounted (read-only); unset = none."""

MODEL_FILE_ENV = "STREAMTRAIN_MODEL_FILE"
"""The path of the `.keras` file of `spec.model.file` in the trainer's pod (its folder of the
claim is mounted read-only); unset = none."""

BOOTSTRAP_ENV = "STREAMTRAIN_BOOTSTRAP_SERVERS"
"""The resolved Kafka bootstrap address (from a Strimzi `Kafka` status or the spec)."""

CREDENTIALS_ENV = "STREAMTRAIN_KAFKA_CREDENTIALS"
"""The folder where a KafkaUser Secret is mounted."""

CLUSTER_CA_ENV = "STREAMTRAIN_KAFKA_CLUSTER_CA"
"""The folder where the cluster CA Secret is mounted (TLS listeners)."""

SASL_USERNAME_ENV = "STREAMTRAIN_KAFKA_USERNAME"
"""The SCRAM user name (the KafkaUser's name)."""

REGISTRY_CREDENTIALS_ENV = "STREAMTRAIN_REGISTRY_CREDENTIALS"
"""The folder where the Secret of `data.schemaRegistry.authentication` is mounted."""

REGISTRY_CA_ENV = "STREAMTRAIN_REGISTRY_CA"
"""The folder where the Secret of `data.schemaRegistry.caSecretName` is mounted."""

TERMINATION_LOG_ENV = "STREAMTRAIN_TERMINATION_LOG"
"""Overrides where the termination message is written (tests; pods use the default)."""

PROGRESS_URL_ENV = "STREAMTRAIN_PROGRESS_URL"
"""The URL a pod posts its live progress to; unset = no live progress (local runs)."""

PROGRESS_TOKEN_ENV = "STREAMTRAIN_PROGRESS_TOKEN"
"""The file holding the pod's projected service-account token for the progress channel."""

PROGRESS_CA_ENV = "STREAMTRAIN_PROGRESS_CA"
"""The file holding the CA that the progress endpoint's certificate is verified against."""

# ---------------------------------------------------------------- replicas of a phase

WORKER_INDEX_ENV = "JOB_COMPLETION_INDEX"
"""The pod's index among its phase's replicas (0 = the chief), `0..replicas-1`: Kubernetes sets it
in every pod of an Indexed Job; a local run sets it for each process it starts."""

WORKERS_ENV = "STREAMTRAIN_WORKERS"
"""The `host:port` of every training worker, in index order, comma-separated (TF_CONFIG's
cluster); set only for a training group of several workers."""

WORKER_PORT = 2222
"""The port a training worker listens on for its group (TFJob's default)."""

SERVE_REPLICA_ENV = "STREAMTRAIN_SERVE_REPLICA"
"""Which serving replica this process is: the pod's name in a cluster (a Deployment's pods have
no index), `0..replicas-1` in a local run. With the job's uid it makes the replica's Kafka
`transactional.id`, which stays the same when the container restarts in its pod, so the
restarted replica fences its predecessor and aborts the transaction it left open."""

PEER_LOST_EXIT = 75
"""The exit code of a training worker that stops because a peer of its group went away (the
group restarts from the chief's checkpoint); the Job's pod failure policy does not count it
against `runPolicy.backoffLimit`, so only the peer's own failure does."""

# ---------------------------------------------------------------- paths in the pod

SCRATCH_PATH = "/tmp"
"""Writable scratch directory (the root filesystem is read-only)."""

CREDENTIALS_PATH = "/var/run/streamtrain/kafka-user"
"""Where a KafkaUser Secret is mounted."""

CLUSTER_CA_PATH = "/var/run/streamtrain/cluster-ca"
"""Where the Strimzi cluster CA Secret is mounted (TLS listeners)."""

REGISTRY_CREDENTIALS_PATH = "/var/run/streamtrain/registry-user"
"""Where the schema registry's credentials Secret is mounted."""

REGISTRY_CA_PATH = "/var/run/streamtrain/registry-ca"
"""Where the Secret with the schema registry's CA certificate is mounted."""

SOURCE_PATH = "/var/run/streamtrain/source-model"
"""Where the folder holding the model of `spec.model.source` is mounted, read-only."""

MODEL_FILE_PATH = "/var/run/streamtrain/model-file"
"""Where the folder holding the `.keras` file of `spec.model.file` is mounted, read-only."""

PROGRESS_TOKEN_DIR = "/var/run/streamtrain/progress"
"""Where the projected progress token and the endpoint's CA are mounted (the kubelet refreshes
both there)."""

PROGRESS_TOKEN_FILE = "token"
"""The token's file name inside `PROGRESS_TOKEN_DIR`."""

PROGRESS_CA_FILE = "ca.crt"
"""The CA's file name inside `PROGRESS_TOKEN_DIR`."""

TERMINATION_LOG = "/dev/termination-log"
"""Kubernetes' default `terminationMessagePath`, where a pod leaves its final report."""

# ---------------------------------------------------------------- how a pod ends

EXIT_OK, EXIT_FAILED = 0, 1
"""Exit codes of `streamtrain`: success; the phase failed and another pod may succeed (a crash,
a read that stalled, a group that fell apart): the child Job retries it up to
`runPolicy.backoffLimit`."""

FailureReason = Literal["InvalidSpec", "KafkaUnreachable", "KafkaLoginRefused",
                        "KafkaClientUnsupported", "TopicNotFound", "TooManyBadRecords",
                        "ShapeMismatch", "ModelUnusable"]
"""Why a pod failed for good: `PodReport.reason`, then the job's REASON and `Failed` condition."""


@dataclass(frozen=True)
class PermanentFailure:
    """A failure no retry can fix: another pod would meet the same spec, topic, data or Kafka."""

    reason: FailureReason
    """The CamelCase cause the pod reports and the job shows (REASON, the `Failed` condition)."""
    exit_code: int
    """The pod's exit code for it; the child Job's `podFailurePolicy` fails the Job at once on
    it (`FailJob`), so Kubernetes starts no other pod."""
    kafka: bool
    """Whether it says the pod could not work with Kafka: the job then also shows
    `KafkaReady=False` with this reason."""
    meaning: str
    """When a pod reports it."""


PERMANENT_FAILURES: tuple[PermanentFailure, ...] = (
    PermanentFailure("InvalidSpec", 2, False,
                     "the spec or the replica settings handed to the pod do not parse"),
    PermanentFailure("KafkaUnreachable", 3, True,
                     "no broker answered at the bootstrap address within the connection check"),
    PermanentFailure("KafkaLoginRefused", 4, True,
                     "the brokers refused the SCRAM login or the TLS handshake"),
    PermanentFailure("KafkaClientUnsupported", 5, True,
                     "spec.kafka.client cannot read these brokers (tensorflow-io and Kafka 4)"),
    PermanentFailure("TopicNotFound", 6, False, "a topic the phase reads does not exist"),
    PermanentFailure("TooManyBadRecords", 7, False,
                     "more records are malformed than data.maxBadRecordsRatio allows"),
    PermanentFailure("ShapeMismatch", 8, False,
                     "the model to evaluate or learn from takes other inputs than the data "
                     "gives, or the user's model does not fit the prepared features or the "
                     "task's output"),
    PermanentFailure("ModelUnusable", 9, False,
                     "the user's model (model.factory or model.file) cannot be imported, "
                     "called or loaded"),
)
"""Every permanent failure, with its exit code. Exit codes 0 and 1, `PEER_LOST_EXIT`, the
interpreter's own (120, 126, 127) and 128 + a signal are not among them."""

PERMANENT: dict[FailureReason, PermanentFailure] = {row.reason: row for row in PERMANENT_FAILURES}
PERMANENT_BY_EXIT_CODE: dict[int, PermanentFailure] = {
    row.exit_code: row for row in PERMANENT_FAILURES}

EXIT_BAD_INPUT = PERMANENT["InvalidSpec"].exit_code
"""`streamtrain`'s exit code for a bad manifest or bad arguments (also `streamtrain run`)."""

NOT_RETRIED_EXIT_CODES: tuple[int, ...] = tuple(sorted(PERMANENT_BY_EXIT_CODE))
"""Exit codes after which the child Job fails at once instead of starting another pod (its
`podFailurePolicy`)."""

KAFKA_FAILURES: tuple[FailureReason, ...] = tuple(
    row.reason for row in PERMANENT_FAILURES if row.kafka)
"""`PodReport.reason` values that say the pod could not work with Kafka: the operator then sets
`KafkaReady=False` with that reason."""


def exit_code_for(ok: bool, reason: FailureReason | None) -> int:
    """The exit code of a pod that ended with this report: 0, a permanent failure's own code,
    else `EXIT_FAILED` (retried)."""
    if ok:
        return EXIT_OK
    return PERMANENT[reason].exit_code if reason is not None else EXIT_FAILED


# ---------------------------------------------------------------- progress channel

PROGRESS_MIN_INTERVAL_S = 2.0
"""A pod posts at most this often, and the operator writes a job's progress at most this often."""

PROGRESS_MAX_INTERVAL_S = 10.0
"""A running pod posts at least this often, also when nothing moved (a heartbeat)."""

PROGRESS_STEP_PERCENT = 10.0
"""A pod posts, and the operator writes, as soon as a phase's percent enters a new step of this
size (10 %, 20 %, ...), however soon after the last post: the records drive this cadence, not
the clock, so `kubectl get stj -w` shows progress rising on a machine of any speed, at the cost
of at most 100 / step more posts and writes per phase."""


def progress_step(percent: float | None) -> int:
    """The step of `PROGRESS_STEP_PERCENT` a percent is in (0 for 0-9.9 %, ..., 10 for 100 %);
    -1 without a percent (online learning has no total)."""
    if percent is None:
        return -1
    return int(percent // PROGRESS_STEP_PERCENT)

PROGRESS_TOKEN_SECONDS = 3600
"""Lifetime of a projected progress token; the kubelet renews it well before it expires."""

PROGRESS_CA_CONFIGMAP = "streamtrain-progress-ca"
"""The ConfigMap, one per namespace with jobs, in which the operator publishes the CA of its
progress endpoint's certificate (the pods mount it beside their token)."""

PROGRESS_CA_KEY = "ca.crt"
"""The CA's key (PEM) in `PROGRESS_CA_CONFIGMAP`."""


def progress_audience(namespace: str, name: str, uid: str) -> str:
    """The audience of a job's progress token: valid for that one job, nowhere else.

    The uid makes a token of a deleted job useless for a new job of the same name; the
    API server itself accepts no token of this audience.
    """
    return f"{API_GROUP}/progress/{namespace}/{name}/{uid}"


def progress_path(namespace: str, name: str) -> str:
    """The path under the operator's progress URL where a job's pods post."""
    return f"/progress/{namespace}/{name}"
