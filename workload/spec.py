"""The `StreamingTrainingJob` spec: one model, three uses.

The CRD's OpenAPI schema is generated from these classes, the operator parses
the resource with them, and the workload reads its configuration through them
(the operator hands each pod the spec as YAML). A local `streamtrain run
job.yaml` feeds the same document to the same code. Importing this module
never imports TensorFlow.

Field names are snake_case in Python and camelCase on the wire (the aliases);
defaults reproduce TensorFlow's Kafka tutorial.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from workload.contract import API_GROUP as API_GROUP  # the resource's group, re-exported
from workload.contract import MODES, PHASE_MODES, Mode
from workload.spec_base import IN_CLUSTER, Rule, SpecModel, format_validation_error

API_VERSION = "v1alpha1"
KIND = "StreamingTrainingJob"
PLURAL = "streamingtrainingjobs"
SINGULAR = "streamingtrainingjob"
SHORT_NAME = "stj"

FOREVER = -1
"""The value of a timeout that never expires."""

Quantity = Annotated[str | int, Field(description="A Kubernetes quantity, e.g. `500m`, `2Gi`, `4`.")]

TOPIC_PATTERN = r"^(\.*[a-zA-Z0-9_-][a-zA-Z0-9._-]*|\.{3,})$"
"""Kafka's rule for topic names: letters, digits, `.`, `_` and `-`, but not `.` or `..`."""

TOPIC_RULE = Rule(lambda topic: re.fullmatch(TOPIC_PATTERN, topic) is not None,
                  f"self.matches(r'{TOPIC_PATTERN}')",
                  "must be a Kafka topic name: letters, digits, '.', '_' and '-' only, and not "
                  "'.' or '..' alone")

TopicName = Annotated[str, Field(min_length=1, max_length=249), TOPIC_RULE]
"""A Kafka topic name (1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`)."""

PORT_PATTERN = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
"""A TCP port, 1-65535, without leading zeros."""

BOOTSTRAP_PATTERN = rf"^[^,\t\n\v\f\r ]+:{PORT_PATTERN}(,[^,\t\n\v\f\r ]+:{PORT_PATTERN})*$"
"""A comma-separated list of `host:port`."""

BOOTSTRAP_RULE = Rule(lambda servers: re.fullmatch(BOOTSTRAP_PATTERN, servers) is not None,
                      f"self.matches(r'{BOOTSTRAP_PATTERN}')",
                      "must be a comma-separated list of host:port, each port 1-65535, e.g. "
                      "my-cluster-kafka-bootstrap:9092")

OUTPUT_PATH_RULE = Rule(
    lambda path: path.startswith("/") and re.search(r"(^|/)\.\.(/|$)", path) is None,
    r"self.startsWith('/') && !self.matches(r'(^|/)\.\.(/|$)')",
    "must be an absolute folder without '..' segments (the pods mount the model volume "
    "there), e.g. /models/susy")

GroupName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"\S")]
"""A Kafka consumer group id: not empty or blank."""


class SpecError(ValueError):
    """A spec that can never work; the message names each offending field and why."""


# ---------------------------------------------------------------- Kafka

FORBIDDEN_KAFKA_KEYS = frozenset(
    {
        "sasl.password",
        "sasl.username",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl.keystore.password",
        "ssl.certificate.pem",
        "sasl.oauthbearer.client.secret",
    }
)
"""Credentials never go in the spec (it is readable by everyone who can read the job)."""

ALLOWED_KAFKA_KEY_PREFIXES = (
    "session.timeout.ms",
    "max.poll.interval.ms",
    "heartbeat.interval.ms",
    "fetch.",
    "queued.",
    "socket.",
    "reconnect.",
    "message.max.bytes",
    "receive.message.max.bytes",
    "auto.offset.reset",
    "client.id",
    "client.rack",
    "metadata.",
    "topic.metadata.",
    "api.version.",
    "broker.version.fallback",
    "partition.assignment.strategy",
    "security.protocol",
    "sasl.mechanism",
    "ssl.ca.location",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
    "debug",
    "statistics.interval.ms",
)
"""librdkafka settings a job may pass through; others are owned by streamtrain."""


def _cel_list(items: Iterable[str]) -> str:
    """A CEL list literal of strings (they hold no quotes)."""
    return "[" + ", ".join(f"'{item}'" for item in sorted(items)) + "]"


class ClusterRef(SpecModel):
    """A Strimzi `Kafka` resource in the job's namespace."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the Strimzi `Kafka` resource."""
    listener: str = Field("plain", min_length=1, max_length=25)
    """Listener name in the Kafka resource's `status.listeners[]` whose bootstrap address is used."""


class UserRef(SpecModel):
    """A Strimzi `KafkaUser` whose Secret holds the job's Kafka credentials."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the `KafkaUser` (and of the Secret its User Operator writes)."""


KafkaClient = Literal["librdkafka", "tensorflow-io"]
"""The libraries a job may read Kafka with."""


class KafkaSpec(SpecModel):
    """Where the job's Kafka is and how to talk to it: a Strimzi cluster or a plain address."""

    client: KafkaClient = "librdkafka"
    """What reads Kafka: `librdkafka` (librdkafka 2.x through confluent-kafka; reads every Kafka
    from 0.10 to 4.x) or `tensorflow-io` (tensorflow-io's datasets, as in TensorFlow's tutorial;
    its librdkafka 1.5.0 reads Kafka 3.x and older only)."""
    cluster_ref: ClusterRef | None = None
    """A Strimzi `Kafka` resource; the bootstrap address is read from its status. Exclusive with `bootstrapServers`."""
    bootstrap_servers: Annotated[str, Field(max_length=4096), BOOTSTRAP_RULE] | None = None
    """Comma-separated `host:port` list, each port 1-65535. Exclusive with `clusterRef`."""
    user_ref: UserRef | None = None
    """Optional Strimzi `KafkaUser` (SCRAM-SHA-512 or mutual TLS) whose Secret is mounted in the pods."""
    config: dict[str, str] = Field(default_factory=dict, max_length=64)
    """librdkafka consumer settings passed through (e.g. `session.timeout.ms: "7000"`); no credentials."""
    manage_topics: bool = False
    """With `clusterRef`: create a Strimzi `KafkaTopic` for each topic the job reads, if missing."""

    RULES = (
        Rule(lambda kafka: (kafka.cluster_ref is None) != (kafka.bootstrap_servers is None),
             "has(self.clusterRef) != has(self.bootstrapServers)",
             "set exactly one of clusterRef and bootstrapServers"),
        Rule(lambda kafka: not FORBIDDEN_KAFKA_KEYS & set(kafka.config),
             f"self.config.all(k, !(k in {_cel_list(FORBIDDEN_KAFKA_KEYS)}))",
             "credentials never go in the spec, which everyone who can read the job can read "
             f"({', '.join(sorted(FORBIDDEN_KAFKA_KEYS))}); reference a KafkaUser with userRef",
             field="config"),
        Rule(lambda kafka: all(key in FORBIDDEN_KAFKA_KEYS or key.startswith(
                 ALLOWED_KAFKA_KEY_PREFIXES) for key in kafka.config),
             f"self.config.all(k, k in {_cel_list(FORBIDDEN_KAFKA_KEYS)} || "
             f"{_cel_list(ALLOWED_KAFKA_KEY_PREFIXES)}.exists(p, k.startsWith(p)))",
             "streamtrain sets the other librdkafka settings itself; a job may set only these "
             f"(or settings that start with them): {', '.join(ALLOWED_KAFKA_KEY_PREFIXES)}",
             field="config"),
    )


# ---------------------------------------------------------------- data

REGISTRY_URL_PATTERN = r"^https?://[^/@\s?#]+(/[^@\s?#]*)?$"
"""An http(s) URL without user info, query or fragment."""

REGISTRY_URL_RULE = Rule(
    lambda url: re.fullmatch(REGISTRY_URL_PATTERN, url) is not None,
    f"self.matches(r'{REGISTRY_URL_PATTERN}')",
    "must be an http or https URL without user name or password (credentials come from "
    "authentication.secretName), e.g. http://apicurio-registry:8080/apis/ccompat/v7")

SecretName = Annotated[str, Field(min_length=1, max_length=253,
                                  pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
"""The name of a Secret in the job's namespace (a DNS subdomain)."""


class RegistryAuthentication(SpecModel):
    """How the pods log in to the schema registry: a Secret, mounted, never copied."""

    type: Literal["basic", "tls"]
    """`basic`: HTTP basic auth with the Secret's `username` and `password` keys; `tls`: mutual
    TLS with its `user.crt` and `user.key` (the keys of a Strimzi KafkaUser's Secret)."""
    secret_name: SecretName
    """The Secret in the job's namespace; the operator mounts it in the pods (it never reads it)."""


class SchemaRegistrySpec(SpecModel):
    """A Confluent-compatible schema registry (Apicurio's `/apis/ccompat/v7`, Confluent's own)."""

    url: Annotated[str, Field(min_length=1, max_length=2048), REGISTRY_URL_RULE]
    """Base URL of the Confluent-compatible API, e.g. `http://registry:8080/apis/ccompat/v7`."""
    subject: str | None = Field(None, min_length=1, max_length=512)
    """The subject whose schema the job reads records as (the reader's schema); default
    `<topic>-value` for the topic each phase reads (Confluent's topic name strategy)."""
    authentication: RegistryAuthentication | None = None
    """Credentials for the registry, from a Secret; none = anonymous."""
    ca_secret_name: SecretName | None = None
    """A Secret whose `ca.crt` signed the registry's certificate (https); default: the
    image's trusted CAs."""

    RULES = (
        Rule(lambda registry: registry.authentication is None
             or registry.authentication.type != "tls" or registry.url.startswith("https://"),
             "!has(self.authentication) || self.authentication.type != 'tls' || "
             "self.url.startsWith('https://')",
             "authentication type tls needs an https url", field="url"),
    )


ColumnName = Annotated[str, Field(min_length=1, max_length=253)]
"""A column's name (a JSON or Avro field's dotted path)."""

MAX_CATEGORICAL = 256
"""Categorical columns a job may name. The API server checks each against every column: its
cost budget for one rule allows that because column names are at most 253 characters."""


class DataSpec(SpecModel):
    """The layout of each Kafka record."""

    format: Literal["csv", "json", "avro"] = "csv"
    """`csv`: the message value is comma-separated numbers; `json`: a JSON object per message;
    `avro`: Avro in the Confluent wire format (a zero byte, the writer schema's 4-byte id, the
    body), its schemas in `schemaRegistry`."""
    features: int | None = Field(18, ge=1, le=4096)
    """Number of feature columns (CSV without names). Ignored when `columns` is set."""
    columns: list[ColumnName] | None = Field(None, min_length=1, max_length=4096,
                                      json_schema_extra={"x-kubernetes-list-type": "set"})
    """Column names in record order (CSV) or the JSON or Avro fields to read; includes the label
    unless `label` is `key`. A field inside nested objects (Avro: records) is named by its path
    with dots: `features.momentum` reads `{"features": {"momentum": 1.5}}` (so a column cannot
    also be a path under another column)."""
    label: str = Field("key", min_length=1)
    """`key`: the label is the message key (`0` or `1`), as in the tutorial; else a column or JSON field name."""
    max_record_bytes: int = Field(65536, ge=16, le=16 * 1024 * 1024)
    """Records longer than this many bytes are set aside as `oversized`."""
    max_bad_records_ratio: float = Field(0.05, ge=0.0, le=1.0)
    """The run fails when more than this fraction of records is malformed (0 = none tolerated)."""
    dead_letter_topic: TopicName | None = None
    """Optional topic that receives each malformed record with its reason in a header."""
    schema_registry: SchemaRegistrySpec | None = None
    """Where `avro` records' schemas are (required for `avro`)."""
    schema_version: int | None = Field(None, ge=1)
    """`avro`: the version of the subject whose schema the job reads records as; default the
    subject's latest version when a phase starts. Records written with other versions are
    resolved to it (Avro's schema resolution: added fields take their defaults)."""
    categorical: list[ColumnName] | None = Field(None, min_length=1, max_length=MAX_CATEGORICAL,
                                          json_schema_extra={"x-kubernetes-list-type": "set"})
    """Columns that hold categories (strings, Avro enum symbols, or integer codes read as their
    decimal text) instead of numbers. Each gets a vocabulary learned from the training range (its
    `maxTokens` most frequent values; the rest share one out-of-vocabulary bucket) and is encoded
    inside the model (one-hot when the vocabulary is small, else an embedding), so the exported model
    takes the raw values, strings included. Names columns other than the label."""
    max_tokens: int = Field(1000, ge=1, le=100_000)
    """Values kept per categorical column: the most frequent in the training range (ties in
    text order); the others map to one out-of-vocabulary bucket."""

    RULES = (
        Rule(lambda data: data.label == "key" or data.label in (data.columns or []),
             "self.label == 'key' || (has(self.columns) && self.label in self.columns)",
             "label must be 'key' or one of columns", field="label"),
        Rule(lambda data: data.format != "json" or data.columns is not None,
             "self.format != 'json' || has(self.columns)",
             "format json needs columns (the JSON fields to read)", field="columns"),
        Rule(lambda data: data.format != "avro" or data.columns is not None,
             "self.format != 'avro' || has(self.columns)",
             "format avro needs columns (the Avro fields to read)", field="columns"),
        Rule(lambda data: (data.format == "avro") == (data.schema_registry is not None),
             "(self.format == 'avro') == has(self.schemaRegistry)",
             "schemaRegistry is set exactly when format is avro", field="schemaRegistry"),
        Rule(lambda data: data.format == "avro" or data.schema_version is None,
             "self.format == 'avro' || !has(self.schemaVersion)",
             "schemaVersion applies to format avro only", field="schemaVersion"),
        Rule(lambda data: data.categorical is None or all(
                 name in (data.columns or []) and name != data.label for name in data.categorical),
             "!has(self.categorical) || (has(self.columns) && self.categorical.all(c, "
             "c in self.columns && c != self.label))",
             "categorical names columns (other than the label): set columns and list each "
             "categorical field there", field="categorical"),
    )

    @field_validator("columns")
    @classmethod
    def _unique(cls, columns: list[str] | None) -> list[str] | None:
        # The CRD says the same with `x-kubernetes-list-type: set`.
        if columns is not None and len(set(columns)) != len(columns):
            raise ValueError("columns must be unique")
        # Checked here only (a CEL rule comparing every pair of up to 4,096 names is too costly).
        parts = [name.split(".") for name in columns or ()]
        under = {".".join(path[:end]) for path in parts for end in range(1, len(path))}
        clash = sorted(under.intersection(columns or ()))
        if clash:
            raise ValueError(f"column {clash[0]!r} is also the path of other columns "
                             f"({clash[0]}.*): a JSON field cannot be a number and an object")
        return columns

    @property
    def feature_names(self) -> list[str]:
        """Names of the model's input columns, in order (generated as `f0..fN` when unnamed)."""
        if self.columns is not None:
            return [name for name in self.columns if name != self.label]
        return [f"f{index}" for index in range(self.features or 0)]

    @property
    def categorical_names(self) -> list[str]:
        """The categorical features, in record order."""
        chosen = set(self.categorical or ())
        return [name for name in self.feature_names if name in chosen]

    @property
    def numeric_names(self) -> list[str]:
        """The numeric features, in record order (the model's `features` input)."""
        chosen = set(self.categorical or ())
        return [name for name in self.feature_names if name not in chosen]

    @property
    def record_columns(self) -> list[str]:
        """Every column of a record value, in order (the label column included when it is one)."""
        return list(self.columns) if self.columns is not None else self.feature_names


# ---------------------------------------------------------------- modes

class EarlyStoppingSpec(SpecModel):
    """Stop when the validation loss stops improving; export the best epoch's weights."""

    patience: int = Field(3, ge=0, le=10000)
    """Epochs without a better validation loss before training stops (0 = run every epoch)."""
    min_delta: float = Field(0.0, ge=0.0)
    """How much lower the validation loss must be to count as better."""
    restore_best_weights: bool = True
    """Export the weights of the epoch with the lowest validation loss, not the last epoch's."""


MAX_EPOCHS = 10_000
"""Most passes a training phase may make (`train.epochs`); also the bound of the epoch figures a
pod reports (`workload.status`)."""


class TrainSpec(SpecModel):
    """Batch training: replay a fixed offset range of the topic every epoch."""

    topic: TopicName
    """Topic to train on; every partition is read, from its start to its end offset at job start.
    Kafka's rule for names: 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`."""
    epochs: int = Field(10, ge=1, le=MAX_EPOCHS)
    """Passes over the data."""
    batch_size: int = Field(64, ge=1, le=1 << 20)
    """Records per gradient step."""
    shuffle_buffer: int = Field(64, ge=0, le=1 << 24)
    """Records held for shuffling (0 = no shuffle)."""
    cache: bool = True
    """Keep decoded records in memory after the first epoch instead of re-reading Kafka."""
    checkpoint_every_seconds: int = Field(60, ge=0, le=86400)
    """Seconds between checkpoints inside an epoch (one is also written at each epoch's end and
    when the pod is asked to stop). A trainer killed without warning replays the batches trained
    since its last checkpoint; 0 = after every batch, so it replays at most one (one small write
    per batch)."""
    partitions: int = Field(1, ge=1, le=10000)
    """Partitions to create the topic with when `kafka.manageTopics` is set."""
    validation_fraction: float = Field(0.1, ge=0.0, le=0.5)
    """Share of each partition's range held out at its end (the same records on every run) to
    validate after each epoch; 0 = no validation, and no early stopping."""
    early_stopping: EarlyStoppingSpec = Field(default_factory=EarlyStoppingSpec)
    """When to stop before `epochs` and which epoch's weights to export (needs validation)."""
    learning_rate_schedule: Literal["constant", "cosine"] = "constant"
    """`cosine`: the step size decays from `model.learningRate` to 0 over the planned epochs."""


class EvaluateSpec(SpecModel):
    """Evaluation: score each record of the topic exactly once per consumer group."""

    topic: TopicName
    """Topic to evaluate on (1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`)."""
    consumer_group: GroupName = "testcg"
    """Consumer group whose committed offsets track what has been scored (not blank)."""
    stream_timeout_ms: int = Field(10000, ge=FOREVER)
    """Milliseconds to wait for new records after the last one before finishing (-1 = forever)."""
    batch_size: int = Field(1024, ge=1, le=1 << 20)
    """Records scored per step."""
    partitions: int = Field(2, ge=1, le=10000)
    """Partitions to create the topic with when `kafka.manageTopics` is set."""


class OnlineSpec(SpecModel):
    """Online learning: train on mini-batches as records arrive."""

    topic: TopicName
    """Topic to learn from (1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`)."""
    consumer_group: GroupName = "cgonline"
    """Consumer group whose committed offsets track what has been learned (not blank)."""
    stream_timeout_ms: int = Field(10000, ge=FOREVER)
    """Milliseconds to wait for new records before stopping (-1 = run until stopped)."""
    batch_size: int = Field(64, ge=1, le=1 << 20)
    """Records per gradient step."""
    export_every_records: int = Field(50000, ge=0)
    """Export the model after this many new records (0 = only at the end)."""
    export_every_seconds: int = Field(300, ge=0)
    """Export the model after this many seconds (0 = only at the end)."""
    partitions: int = Field(1, ge=1, le=10000)
    """Partitions to create the topic with when `kafka.manageTopics` is set."""


# ---------------------------------------------------------------- model

class LayerSpec(SpecModel):
    """One hidden layer: `{dense: 128, activation: relu}` or `{dropout: 0.2}`."""

    dense: int | None = Field(None, ge=1, le=65536)
    """Units of a fully connected layer."""
    activation: Literal["relu", "tanh", "sigmoid", "gelu", "elu", "selu", "linear"] | None = None
    """Activation of a dense layer (default `relu`)."""
    dropout: float | None = Field(None, ge=0.0, lt=1.0)
    """Fraction of units dropped during training."""

    RULES = (
        Rule(lambda layer: (layer.dense is None) != (layer.dropout is None),
             "has(self.dense) != has(self.dropout)",
             "a layer sets exactly one of dense and dropout"),
        Rule(lambda layer: layer.dropout is None or layer.activation is None,
             "!has(self.dropout) || !has(self.activation)",
             "activation belongs to dense layers, not dropout", field="activation"),
    )


def tutorial_layers() -> list[LayerSpec]:
    """The hidden layers of TensorFlow's Kafka tutorial."""
    return [
        LayerSpec(dense=128),
        LayerSpec(dropout=0.2),
        LayerSpec(dense=256),
        LayerSpec(dropout=0.4),
        LayerSpec(dense=128),
        LayerSpec(dropout=0.4),
    ]


class OutputSpec(SpecModel):
    """Where the trained model goes."""

    path: Annotated[str, Field(min_length=1, max_length=1024), OUTPUT_PATH_RULE] = "/models/model"
    """Directory for the Keras file, SavedModel, checkpoints, plots and results: an absolute
    path in the pod without `..` segments, where `volumeClaim` is mounted (a local run writes
    to its own folder instead)."""
    volume_claim: str | None = Field(None, min_length=1, max_length=253)
    """PersistentVolumeClaim mounted at `path` in the pods; without it the pods use a scratch volume."""


CLAIM_PATH_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$"
"""A relative folder inside a volume claim: no leading `/`, no `.` or `..` segments."""


class ModelSourceSpec(SpecModel):
    """A model trained elsewhere, mounted read-only: another job's, or a folder on a claim."""

    job: str | None = Field(None, min_length=1, max_length=253)
    """A StreamingTrainingJob in this namespace whose trained model is used (the job waits
    until that one has trained). Exclusive with `path`."""
    volume_claim: str | None = Field(None, min_length=1, max_length=253)
    """PersistentVolumeClaim holding `path`."""
    path: str | None = Field(None, min_length=1, max_length=1024, pattern=CLAIM_PATH_PATTERN)
    """Folder inside `volumeClaim` that holds `model.keras`, e.g. the folder of another job's
    `status.model.uri` (`<namespace>/<name>/<uid>`). Exclusive with `job`."""

    RULES = (
        Rule(lambda source: (source.job is None) != (source.path is None),
             "has(self.job) != has(self.path)", "set exactly one of job and path"),
        Rule(lambda source: (source.path is None) == (source.volume_claim is None),
             "has(self.path) == has(self.volumeClaim)", "path and volumeClaim go together",
             field="volumeClaim"),
    )


Task = Literal["binary", "multiclass", "regression"]
"""What a model predicts: a label 0 or 1, one of several classes, or a number."""

MAX_CLASSES = 1000
"""Classes a multiclass job takes at most (named in `model.classes` or learned)."""

FACTORY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
"""`package.module:function`: a dotted module path, a colon, a function name."""

MODEL_FILE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*\.keras$"
"""A relative path to a `.keras` file inside a volume claim: no leading `/`, no `..`."""


class ModelFileSpec(SpecModel):
    """A Keras model file on a volume claim, mounted read-only in the trainer's pod."""

    volume_claim: str = Field(min_length=1, max_length=253)
    """PersistentVolumeClaim holding the file."""
    path: str = Field(min_length=1, max_length=1024, pattern=MODEL_FILE_PATTERN)
    """The `.keras` file's path inside the claim, e.g. `models/ticket-router.keras` (a local
    run reads it relative to the current folder)."""


class ModelSpec(SpecModel):
    """The network: the task it solves, and its layers from the spec or the user's own model."""

    task: Task = "binary"
    """What the model predicts. `binary`: a label 0 or 1 (one sigmoid unit, binary
    cross-entropy). `multiclass`: one of several classes, named in `classes` or learned from
    the training range (softmax, sparse categorical cross-entropy). `regression`: a number (one
    linear unit; the loss is computed on targets standardised with the training range's mean
    and standard deviation, and the exported model answers in the label's own units)."""
    classes: list[str] | None = Field(None, min_length=2, max_length=MAX_CLASSES,
                                      json_schema_extra={"x-kubernetes-list-type": "set"})
    """Multiclass: the class names in output order (integer labels as text: `["0", "1",
    "2"]`); a label outside them is a bad record (`unknown_class`). Absent: the distinct labels
    of the training range (in numeric order when all are integers, else in text order),
    reported in `status.model.classes`."""
    loss: Literal["mse", "huber"] | None = None
    """Regression: `mse` (the default) or `huber` (quadratic within one standard deviation of
    the target, linear beyond: outliers weigh less)."""
    file: ModelFileSpec | None = None
    """The user's own model: a `.keras` file whose architecture and weights are the starting
    point of training, compiled with the task's loss and metrics. It takes the prepared
    features (float32 [batch, width], see `factory`) and ends in the task's output."""
    factory: str | None = Field(None, min_length=3, max_length=512, pattern=FACTORY_PATTERN)
    """The user's own model: `package.module:function` in the pods' image (or on the Python
    path of `streamtrain run`), called with one `ModelRequest` (feature names and kinds, the
    task, its classes, the width of the prepared features, the number of outputs) and
    returning a Keras model from float32 [batch, width] to the task's output: probabilities
    for classification (1 sigmoid unit, or one softmax unit per class), one linear unit for
    regression (in standardised units). Its custom layers must be registered with
    `keras.saving.register_keras_serializable` in that module."""
    layers: list[LayerSpec] = Field(default_factory=tutorial_layers, min_length=1, max_length=64)
    """Hidden layers in order (without `file` or `factory`); the task's output layer is added."""
    optimizer: Literal["adam", "sgd", "rmsprop", "adagrad"] = "adam"
    """Optimizer name."""
    learning_rate: float = Field(0.001, gt=0.0, le=10.0)
    """Optimizer step size."""
    preprocessing: Literal["robust", "standardize", "none"] = "robust"
    """How features are prepared, inside the model, from training statistics: `robust` chooses per
    feature (signed log for heavy tails, a clip at extreme quantiles, standardisation,
    near-constant columns dropped); `standardize` only standardises; `none` feeds them raw."""
    output: OutputSpec = Field(default_factory=OutputSpec)
    """Where to write the model and its artefacts."""
    source: ModelSourceSpec | None = None
    """A model trained by another job: what a job that evaluates or learns online without
    training uses (online starts from it), or, with `train`, the starting point of training
    (its preparation, task, classes and weights kept; trained further on this job's data).
    Absent: the job's own trained model."""

    RULES = (
        Rule(lambda model: model.classes is None or model.task == "multiclass",
             "!has(self.classes) || self.task == 'multiclass'",
             "classes belong to task multiclass", field="classes"),
        Rule(lambda model: model.loss is None or model.task == "regression",
             "!has(self.loss) || self.task == 'regression'",
             "loss chooses between mse and huber for task regression", field="loss"),
        Rule(lambda model: model.file is None or model.factory is None,
             "!has(self.file) || !has(self.factory)",
             "set at most one of file and factory (the user's own model)", field="factory"),
    )

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, classes: list[str] | None) -> list[str] | None:
        # The CRD says the same with `x-kubernetes-list-type: set`.
        if classes is not None and len(set(classes)) != len(classes):
            raise ValueError("classes must be unique")
        return classes

    @property
    def user_model(self) -> bool:
        """Whether the network is the user's own (a file or a factory), not built from `layers`."""
        return self.file is not None or self.factory is not None


# ---------------------------------------------------------------- pods

class ResourcesSpec(SpecModel):
    """Compute resources of a pod's container, as in a Pod spec."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    """Minimum resources, e.g. `{cpu: "1", memory: 2Gi}`."""
    limits: dict[str, Quantity] = Field(default_factory=dict)
    """Maximum resources."""


MAX_REPLICAS = 100
"""Pods a role may run at most (an Indexed Job's pod hostnames end in `-<index>`)."""


class RoleSpec(SpecModel):
    """The pods of one role (trainer or evaluator)."""

    image: str | None = Field(None, min_length=1)
    """Container image that holds the workload; absent = the operator's workload image (set
    when the operator is installed: the chart's `workloadImage`)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """When the kubelet pulls the image; absent = the operator's setting (`IfNotPresent` unless
    the chart says otherwise)."""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """CPU and memory for the container."""
    replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    """Pods of this role. Trainer: the workers of one `MultiWorkerMirroredStrategy` group, each
    training on its own share of the topic's partitions or offsets (worker 0 checkpoints and
    exports; a failed worker restarts the group from the last checkpoint); online learning
    takes 1. Evaluator: evaluators each scoring its own partitions or offset slices exactly once
    with a ledger of its own; their figures are merged into one result."""
    service_account_name: str | None = Field(None, min_length=1, max_length=253)
    """ServiceAccount the pods run as (none of the workload needs API access)."""


MAX_SERVE_LATENCY_MS = 10_000
"""The longest a serving transaction may stay open (`serve.maxLatencyMs`): well inside the
transaction timeout the replicas ask Kafka for, so a slow batch is never aborted by the broker."""


class PromotionSpec(SpecModel):
    """When a model learned online replaces the served one (jobs with `online` and `serve`)."""

    window: int = Field(2000, ge=50, le=1_000_000)
    """Labelled records of the online topic on which the challenger (the learner's model) and
    the serving model are compared, each scored by both before the learner trains on it;
    decided at each online export once this many have been scored since the serving model
    last changed."""
    min_improvement: float = Field(0.01, ge=0.0, lt=1.0)
    """Regression: how much lower (a fraction of the serving model's) the challenger's mean
    squared error must be. Classification is decided by McNemar's test at 99 %."""


class ServeSpec(RoleSpec):
    """Serving: predict each record of a topic into another topic, exactly once, as it arrives."""

    input_topic: TopicName
    """Topic whose records are scored, in the job's `data` layout (the label is not needed:
    a record is served when its features decode). Kafka's rule for names: 1-249 of
    `[a-zA-Z0-9._-]`, not `.` or `..`."""
    output_topic: TopicName
    """Topic that receives one prediction per good input record: the input's key and headers,
    a JSON value with the prediction, the model version and the input's partition and offset.
    Created with the input's partition count when missing; an input partition's predictions
    go to the output partition of the same number (modulo the output's partitions), in order."""
    consumer_group: GroupName = "cgserve"
    """Consumer group of the serving replicas; its offsets, committed in the same Kafka
    transaction as the predictions, say what has been served (not blank)."""
    replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    """Serving pods; the input's partitions are divided among them by the consumer group, so
    replicas beyond the partition count stand by."""
    batch_size: int = Field(20000, ge=1, le=1 << 20)
    """Records per transaction at most: predictions and offsets are committed together after
    this many records, or after `maxLatencyMs`, whichever comes first. Each commit has a fixed
    cost (the offsets sent to the group, the outcome written by the coordinator, markers on
    every partition of the transaction), so a replica catching up on a backlog commits what
    `maxLatencyMs` lets it answer rather than a smaller count: measured on the local broker,
    44,000 records/s at 5,000 per transaction, 53,000-56,000 at 20,000 (each transaction then
    held the 8,192 records of one read). A trickle is committed by `maxLatencyMs` long before
    a batch fills, so the size costs no latency."""
    max_latency_ms: int = Field(50, ge=1, le=MAX_SERVE_LATENCY_MS)
    """Milliseconds a record waits at most before its transaction is committed, counted from
    when it came in (a record that came in during the previous commit counts from then): a
    `read_committed` consumer sees its prediction once that commit ends. Each commit costs a
    few requests to the transaction and group coordinators, so a trickle makes up to 1000 /
    `maxLatencyMs` transactions a second (20 at the default). On the local broker at 1,000
    records/s (load average 3-4), produce -> visible had a median of 35 ms at 50, 61-65 ms at
    100."""
    stream_timeout_ms: int = Field(FOREVER, ge=FOREVER)
    """Milliseconds without a new record after which serving stops (-1 = until stopped). In a
    cluster it must be -1: serving runs as a Deployment, which restarts a pod that ends."""
    partitions: int = Field(1, ge=1, le=10000)
    """Partitions to create the input topic with when `kafka.manageTopics` is set."""
    promotion: PromotionSpec = Field(default_factory=PromotionSpec)
    """With `online` in the job: each online export is a challenger, served only once it beats
    the serving model on the same recent labelled records."""

    @property
    def topic(self) -> str:
        """The topic it reads (`inputTopic`), as every mode's section names it."""
        return self.input_topic

    RULES = (
        Rule(lambda serve: serve.input_topic != serve.output_topic,
             "self.inputTopic != self.outputTopic",
             "outputTopic must differ from inputTopic: predictions written to the topic served "
             "would be served again", field="outputTopic"),
        Rule(lambda serve: serve.stream_timeout_ms == FOREVER,
             f"self.streamTimeoutMs == {FOREVER}",
             "serving runs as a Deployment in a cluster, which restarts a pod that stops: "
             "streamTimeoutMs must be -1 there (a local run may stop when idle)",
             field="streamTimeoutMs", in_cluster_only=True),
    )


class RunPolicy(SpecModel):
    """How the job's pods are retried, limited and cleaned up."""

    backoff_limit: int = Field(3, ge=0, le=100)
    """Pod retries per phase before the job fails."""
    active_deadline_seconds: int | None = Field(None, ge=1)
    """Seconds a phase may run before it is stopped and the job fails (none = no limit)."""
    ttl_seconds_after_finished: int | None = Field(None, ge=0)
    """Seconds after the job finishes before its child Jobs and pods are deleted (none = keep)."""
    suspend: bool = False
    """While true, no pods run; setting it back to false resumes the current phase."""
    progress_deadline_seconds: int | None = Field(900, ge=1)
    """Seconds a running phase may go without progress (its records not growing, as its pods
    report them live) before its pods are stopped and the job fails with reason
    ProgressDeadlineExceeded; null = no deadline. A phase that streams with streamTimeoutMs -1
    is exempt. 900 s: well above the longest quiet stretch of a healthy phase (a model load,
    a checkpoint, a consumer group's rebalance), short enough that a stuck job is noticed."""


MUTABLE_FIELDS = frozenset({"run_policy", "trainer", "evaluator"})
"""Spec fields that may change while a job runs: the run policy and the pod templates. Every
other section defines the work and is immutable."""

MUTABLE_KAFKA_FIELDS = frozenset({"user_ref"})
"""`kafka` fields that may change while a job runs: the credentials (a rotated KafkaUser)."""

MUTABLE_SUBFIELDS: dict[str, tuple[type[SpecModel], frozenset[str]]] = {
    "kafka": (KafkaSpec, MUTABLE_KAFKA_FIELDS),
    "serve": (ServeSpec, frozenset(RoleSpec.model_fields)),
}
"""Sections that are immutable except some fields: the Kafka credentials, and the serving pods
(replicas, image, resources: a Deployment scales and rolls them while the job runs)."""


def _has_a_model(mode: Mode) -> Callable[[StreamingTrainingJobSpec], bool]:
    """The check that `mode`, when the job runs it, has a model: trained here, or named."""
    return lambda spec: (getattr(spec, mode) is None or spec.train is not None
                         or spec.model.source is not None)


class StreamingTrainingJobSpec(SpecModel):
    """Train a tf.keras model on a Kafka topic, evaluate it on another, optionally keep learning online."""

    kafka: KafkaSpec
    """The Kafka cluster to read from."""
    data: DataSpec = Field(default_factory=DataSpec)
    """The layout of each record."""
    train: TrainSpec | None = None
    """Batch training (`train: {topic: susy-train}` takes the tutorial's settings); absent = no
    batch training."""
    evaluate: EvaluateSpec | None = None
    """Exactly-once evaluation after training (`evaluate: {topic: susy-test}` for the tutorial's
    settings); absent = none."""
    online: OnlineSpec | None = None
    """Online learning after evaluation; omit for a job that ends after evaluation."""
    serve: ServeSpec | None = None
    """Serving: predictions of the model into a topic, exactly once, by pods that run until
    the job is deleted (once the model is trained, or at once with `model.source`); absent =
    no serving."""
    model: ModelSpec = Field(default_factory=ModelSpec)
    """The network and where it is written."""
    trainer: RoleSpec = Field(default_factory=RoleSpec)
    """Pods that train (batch and online)."""
    evaluator: RoleSpec = Field(default_factory=RoleSpec)
    """Pods that evaluate."""
    run_policy: RunPolicy = Field(default_factory=RunPolicy)
    """Retries, deadlines, clean-up and suspension."""

    RULES = (
        Rule(lambda spec: bool(spec.modes),
             " || ".join(f"has(self.{mode})" for mode in MODES),
             f"set at least one of {', '.join(MODES[:-1])} and {MODES[-1]}"),
        Rule(lambda spec: spec.train is None or spec.model.source is None
             or not spec.model.user_model,
             "!has(self.train) || !has(self.model.source) || "
             "!(has(self.model.file) || has(self.model.factory))",
             "model.source with train is the starting point of training: it excludes model.file "
             "and model.factory", field="model.source"),
        *(Rule(_has_a_model(mode),
               f"!has(self.{mode}) || has(self.train) || has(self.model.source)",
               f"{mode} needs a model: add train, or name a trained model in model.source",
               field=mode, in_cluster_only=True) for mode in ("evaluate", "serve")),
        Rule(lambda spec: spec.serve is None or spec.data.dead_letter_topic not in (
                 spec.serve.input_topic, spec.serve.output_topic),
             "!has(self.serve) || !has(self.data.deadLetterTopic) || "
             "!(self.data.deadLetterTopic in [self.serve.inputTopic, self.serve.outputTopic])",
             "data.deadLetterTopic must differ from serve.inputTopic and serve.outputTopic",
             field="data.deadLetterTopic"),
        Rule(lambda spec: spec.model.task != "multiclass" or spec.model.classes is not None
             or spec.train is not None or spec.model.source is not None,
             "self.model.task != 'multiclass' || has(self.model.classes) || has(self.train) || "
             "has(self.model.source)",
             "a multiclass job that neither trains nor reads a trained model must name its "
             "classes", field="model.classes", in_cluster_only=True),
        Rule(lambda spec: not spec.model.user_model or spec.train is not None,
             "!(has(self.model.file) || has(self.model.factory)) || has(self.train)",
             "the user's own model (file or factory) is the starting point of training: add "
             "train", field="model"),
        Rule(lambda spec: spec.online is None or spec.trainer.replicas == 1,
             "!has(self.online) || self.trainer.replicas == 1",
             "online learning runs one learner: trainer.replicas must be 1 when online is set "
             "(averaging the parameters of several learners is not built)",
             field="trainer.replicas"),
        Rule(lambda spec: spec.evaluator.replicas == 1 or spec.evaluate is None
             or spec.model.output.volume_claim is not None,
             "self.evaluator.replicas == 1 || !has(self.evaluate) || "
             "has(self.model.output.volumeClaim)",
             "required when evaluator.replicas is above 1: the evaluators share their plan and "
             "ledgers in the job's folder on this volume", field="model.output.volumeClaim",
             in_cluster_only=True),
        Rule(lambda spec: _model_outlives_the_trainer(spec.model.output, spec.modes),
             f"!has(self.train) || !({' || '.join(f'has(self.{mode})' for mode in MODES[1:])})"
             " || has(self.model.output.volumeClaim)",
             f"required when {' or '.join(MODES[1:])} run after train: each phase is a pod of "
             "its own, so the model must be on a volume that outlives the trainer's pod",
             field="model.output.volumeClaim", in_cluster_only=True),
    )

    @property
    def modes(self) -> list[Mode]:
        """Every mode this job runs, in order (a mode runs when its section is present)."""
        return [mode for mode in MODES if getattr(self, mode) is not None]

    @property
    def phases(self) -> list[Mode]:
        """The modes this job runs one after another to completion, in order (not `serve`)."""
        return [mode for mode in PHASE_MODES if getattr(self, mode) is not None]


def _model_outlives_the_trainer(output: OutputSpec, phases: list[Mode]) -> bool:
    """Whether the phases after training find the model: on a claim."""
    return "train" not in phases or phases == ["train"] or output.volume_claim is not None


def parse_spec(spec: Mapping[str, Any], in_cluster: bool = False) -> StreamingTrainingJobSpec:
    """Validate a spec mapping (camelCase keys); a `SpecError` names each bad field.

    `in_cluster` also checks the rules that hold only where each phase runs in a pod of its
    own (the operator's view, and the CRD's).
    """
    try:
        return StreamingTrainingJobSpec.model_validate(dict(spec), context={IN_CLUSTER: in_cluster})
    except ValidationError as error:
        raise SpecError(format_validation_error(error)) from None


def parse_job_document(document: Mapping[str, Any]) -> tuple[str, StreamingTrainingJobSpec]:
    """The name and spec of a `StreamingTrainingJob` manifest (a dict from YAML or the API)."""
    if document.get("kind") != KIND:
        raise SpecError(f"kind: expected {KIND}, got {document.get('kind')!r}")
    expected = f"{API_GROUP}/{API_VERSION}"
    if document.get("apiVersion") != expected:
        raise SpecError(f"apiVersion: expected {expected}, got {document.get('apiVersion')!r}")
    name = str((document.get("metadata") or {}).get("name") or "")
    if not name:
        raise SpecError("metadata.name: required")
    return name, parse_spec(document.get("spec") or {})


def load_job_file(text: str) -> tuple[str, StreamingTrainingJobSpec]:
    """Parse a job manifest's YAML text (the first document of kind StreamingTrainingJob)."""
    for document in yaml.safe_load_all(text):
        if isinstance(document, dict) and document.get("kind") == KIND:
            return parse_job_document(document)
    raise SpecError(f"no {KIND} document found")


def dump_spec(spec: StreamingTrainingJobSpec) -> dict[str, Any]:
    """The spec as the wire form (camelCase, defaults filled in, unset optionals left out)."""
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)
