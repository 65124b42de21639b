"""Operator settings from `STREAMTRAIN_OPERATOR_*` environment variables, validated once.

Each field documents its unit and why its default was chosen; `to_kopf()`
turns them into kopf's own settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import kopf

from streamtrain_operator.builders import JOB_UID_LABEL, WORKLOAD_IMAGE, PodDefaults

PREFIX = "STREAMTRAIN_OPERATOR_"

PULL_POLICIES = ("Always", "IfNotPresent", "Never")

CHILD_RESOURCES: tuple[tuple[str, str, str], ...] = (
    ("batch", "v1", "jobs"), ("apps", "v1", "deployments"), ("apps", "v1", "replicasets"),
    ("", "v1", "pods"))
"""(group, version, plural) of the children whose events move a job on."""


class SettingsError(ValueError):
    """An environment variable that cannot be used; the message names it."""


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the operator reads from its environment."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (`NAMESPACES`, comma-separated); empty = the whole cluster."""
    resync_interval_s: float = 300.0
    """Seconds between operator-wide resyncs (`RESYNC_INTERVAL_S`): the jobs, child Jobs,
    Deployments, ReplicaSets and pods are listed again (five lists per namespace) and the
    unfinished jobs whose objects a watch missed are looked at. Jobs move on their own events,
    so this only bounds how long a missed event can go unnoticed; with every job finished nothing is listed."""
    workers: int = 16
    """Reconcile passes that may run at once (`WORKERS`), each on another job. A pass reads
    nothing and mostly waits on the API server for its writes (a child Job, the status); with 200
    jobs applied at 20/s on 2 loaded cores, 4 workers left new jobs 2.9 s (p50) in the queue,
    16 under 1 s."""
    watch_server_timeout_s: int = 300
    """Seconds the API server keeps a watch open (`WATCH_SERVER_TIMEOUT_S`). Without it a
    watch broken by a proxy or load balancer can stall silently for ever."""
    watch_client_timeout_s: int = 330
    """Seconds the client waits on a watch (`WATCH_CLIENT_TIMEOUT_S`); a little above the
    server timeout so the server normally ends the watch first."""
    connect_timeout_s: int = 30
    """Seconds to establish a connection to the API server (`CONNECT_TIMEOUT_S`)."""
    liveness_port: int = 8080
    """Port of the `/healthz` liveness endpoint (`LIVENESS_PORT`); 0 disables it."""
    metrics_port: int = 9090
    """Port of the Prometheus `/metrics` endpoint (`METRICS_PORT`); 0 disables it."""
    progress_port: int = 8081
    """Port of the progress endpoint pods post their live figures to (`PROGRESS_PORT`); 0
    disables it (and `runPolicy.progressDeadlineSeconds`, which measures those figures)."""
    progress_url: str = ""
    """The progress endpoint's base URL as pods reach it (`PROGRESS_URL`), HTTPS, e.g. the
    operator's Service `https://streamtrain-operator-progress.streamtrain-system.svc:8081` (the
    chart sets it); its host is what the endpoint's certificate is made for. Empty = pods get
    no channel."""
    bind_address: str = "0.0.0.0"
    """Address the liveness and metrics endpoints listen on (`BIND_ADDRESS`)."""
    workload_image: str = WORKLOAD_IMAGE
    """The image of trainer, evaluator and online pods whose job names none (`WORKLOAD_IMAGE`);
    the chart fills it from its `workloadImage` values, so a mirror moves both images."""
    workload_image_pull_policy: str = "IfNotPresent"
    """When the kubelet pulls that image (`WORKLOAD_IMAGE_PULL_POLICY`)."""
    peering: str = ""
    """Name of a kopf peering object (`PEERING`) for an active/standby pair; empty = run
    standalone (the peering CRDs are then not needed)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Read and validate the settings; a `SettingsError` names each bad variable."""
        env = os.environ if environ is None else environ
        values = {key.removeprefix(PREFIX): value for key, value in env.items()
                  if key.startswith(PREFIX)}
        known = {"NAMESPACES", "RESYNC_INTERVAL_S", "WORKERS", "WORKLOAD_IMAGE", "PROGRESS_PORT",
                 "PROGRESS_URL",
                 "WORKLOAD_IMAGE_PULL_POLICY", "WATCH_SERVER_TIMEOUT_S",
                 "WATCH_CLIENT_TIMEOUT_S", "CONNECT_TIMEOUT_S", "LIVENESS_PORT",
                 "METRICS_PORT", "BIND_ADDRESS", "PEERING"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(PREFIX + key for key in unknown)}")
        defaults = cls()
        settings = cls(
            namespaces=tuple(item.strip() for item in values.get("NAMESPACES", "").split(",")
                             if item.strip()),
            resync_interval_s=_number(values, "RESYNC_INTERVAL_S", defaults.resync_interval_s,
                                      float),
            workers=int(_number(values, "WORKERS", defaults.workers, int)),
            watch_server_timeout_s=int(_number(values, "WATCH_SERVER_TIMEOUT_S",
                                               defaults.watch_server_timeout_s, int)),
            watch_client_timeout_s=int(_number(values, "WATCH_CLIENT_TIMEOUT_S",
                                               defaults.watch_client_timeout_s, int)),
            connect_timeout_s=int(_number(values, "CONNECT_TIMEOUT_S",
                                          defaults.connect_timeout_s, int)),
            liveness_port=int(_number(values, "LIVENESS_PORT", defaults.liveness_port, int)),
            metrics_port=int(_number(values, "METRICS_PORT", defaults.metrics_port, int)),
            progress_port=int(_number(values, "PROGRESS_PORT", defaults.progress_port, int)),
            progress_url=values.get("PROGRESS_URL", ""),
            bind_address=values.get("BIND_ADDRESS", defaults.bind_address),
            workload_image=values.get("WORKLOAD_IMAGE") or defaults.workload_image,
            workload_image_pull_policy=values.get("WORKLOAD_IMAGE_PULL_POLICY")
            or defaults.workload_image_pull_policy,
            peering=values.get("PEERING", ""),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Reject combinations that cannot work."""
        if self.resync_interval_s <= 0:
            raise SettingsError(f"{PREFIX}RESYNC_INTERVAL_S must be > 0")
        if self.workers < 1:
            raise SettingsError(f"{PREFIX}WORKERS must be >= 1")
        if self.watch_client_timeout_s <= self.watch_server_timeout_s:
            raise SettingsError(f"{PREFIX}WATCH_CLIENT_TIMEOUT_S must exceed "
                                f"{PREFIX}WATCH_SERVER_TIMEOUT_S")
        if self.workload_image_pull_policy not in PULL_POLICIES:
            raise SettingsError(f"{PREFIX}WORKLOAD_IMAGE_PULL_POLICY must be one of "
                                f"{', '.join(PULL_POLICIES)}")
        if self.progress_url and not self.progress_url.startswith("https://"):
            raise SettingsError(f"{PREFIX}PROGRESS_URL must be an https:// URL (the progress "
                                "endpoint serves TLS only)")
        for name, port in (("LIVENESS_PORT", self.liveness_port),
                           ("METRICS_PORT", self.metrics_port),
                           ("PROGRESS_PORT", self.progress_port)):
            if not 0 <= port <= 65535:
                raise SettingsError(f"{PREFIX}{name} must be a port number (0 = off)")

    @property
    def pods(self) -> PodDefaults:
        """What the operator fills in where a job's pod templates are silent."""
        return PodDefaults(self.workload_image, self.workload_image_pull_policy,
                           self.progress_url if self.progress_port else "")

    @property
    def liveness_endpoint(self) -> str | None:
        """kopf's liveness URL, or `None` when disabled."""
        if not self.liveness_port:
            return None
        return f"http://{self.bind_address}:{self.liveness_port}/healthz"

    def to_kopf(self) -> kopf.OperatorSettings:
        """kopf's settings: watch timeouts, quiet event posting, peering."""
        settings = kopf.OperatorSettings()
        settings.watching.server_timeout = self.watch_server_timeout_s
        settings.watching.client_timeout = self.watch_client_timeout_s
        settings.watching.connect_timeout = self.connect_timeout_s
        # kopf's own log-to-event posting stays for warnings; transitions post their own events.
        settings.posting.level = 30
        settings.posting.reporting_component = "streamtrain-operator"
        settings.peering.standalone = not self.peering
        settings.peering.name = self.peering or "default"
        settings.peering.clusterwide = not self.namespaces
        # Watching listed namespaces needs no cluster-wide reads (namespaces, CRDs): a
        # per-namespace Role suffices. The CRD must then exist before the operator starts.
        settings.scanning.disabled = bool(self.namespaces)
        # Child Jobs and pods are watched through a label selector on the API server: the
        # operator never receives other Jobs or pods of the cluster.
        for resource in CHILD_RESOURCES:
            settings.watching.label_selectors[resource] = JOB_UID_LABEL
        return settings


def _number(values: Mapping[str, str], key: str, default: float, kind: type) -> float:
    if key not in values:
        return default
    try:
        number: float = kind(values[key])
    except ValueError:
        raise SettingsError(f"{PREFIX}{key}={values[key]!r} is not a {kind.__name__}") from None
    if number < 0:
        raise SettingsError(f"{PREFIX}{key} must not be negative")
    return number
