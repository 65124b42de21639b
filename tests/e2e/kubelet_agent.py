"""A test-only stand-in for the kubelet: runs pods' commands as local processes.

There is no container runtime here. The agent registers a Node, binds every
unscheduled pod of one namespace to it, runs the pod's (single) container
command as a local process with the pod's environment, and reports phase,
exit code and termination message into the pod's status, as a kubelet does.

Mapping a container onto the host:
- the command's program (`streamtrain`) is looked up next to the test's
  Python interpreter, i.e. the project's own entry point stands in for the image;
- each volume mount becomes a temporary folder (Secrets are written out as
  files; a projected service-account token is requested from the API
  server with the pod's service account, audience and expiry, bound to the
  pod, and written out as the kubelet does, beside the projected ConfigMap
  items, read when the pod starts); a PersistentVolumeClaim is one
  folder shared by every pod that
  claims it, and a mount's `subPath` is a folder inside it, created when
  missing (as the kubelet does); `readOnly` is enforced only in image mode; environment
  values that name a mounted path, also inside JSON values such as the job
  spec, are rewritten to that folder;
- environment values from the pod's own fields (`fieldRef`: name, namespace,
  labels, annotations, such as the completion index the Job controller hands
  an Indexed Job's pods) are filled in as the kubelet does;
- every pod runs on this one host, so the addresses of a training group's
  workers (`WORKERS_ENV`: pod hostnames under a headless Service) become
  127.0.0.1, each hostname with a port of its own, kept for the pod that
  replaces one;
- the termination log is a temporary file named by
  `STREAMTRAIN_TERMINATION_LOG`; with `FallbackToLogsOnError` a failed
  container's log tail becomes the message.
A pod deleted while it runs (suspend, backoff, garbage collection) has its
process killed and is then removed, as a kubelet confirms a graceful delete.

With `STREAMTRAIN_TEST_PODS=image` (or `in_image=True`) each container runs
in its real image instead (`podman run`, see `localparts.containers`): the
pod's image from local storage (the workload archive `make image` wrote is
loaded first), host network, the pod's environment unchanged, its volumes
bound at their mount paths and handed to its user, the termination log bound
at its `terminationMessagePath`, its `runAsUser`/`runAsGroup`, and a read-only
root filesystem with only /tmp writable. The default stays local processes,
which start in a fraction of the time.
This module is never shipped.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes

from localparts import containers, image
from localparts.ports import LOOPBACK, free_port
from workload.contract import TERMINATION_LOG, TERMINATION_LOG_ENV, WORKERS_ENV

NODE_NAME = "streamtrain-local-node"
POLL_S = 0.3
HEARTBEAT_S = 10.0
LOG_TAIL_BYTES = 2048
"""Bytes of a failed container's log that `FallbackToLogsOnError` keeps (as the kubelet: 2 KiB)."""
PODS_ENV = "STREAMTRAIN_TEST_PODS"
"""`image` runs every pod in its real image; anything else, local processes."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunningPod:
    """A pod's process and where its files are."""

    name: str
    container: str
    image: str
    process: subprocess.Popen[bytes]
    folder: Path
    log: Path
    termination_log: Path
    fallback_to_logs: bool
    started_at: str
    container_id: str | None = None
    """The podman container's name when the pod runs in its image."""


def translate(value: Any, mounts: dict[str, Path]) -> Any:
    """`value` with every path under a mount rewritten to the mount's host folder."""
    if isinstance(value, str):
        for mount_path, host in sorted(mounts.items(), key=lambda item: -len(item[0])):
            if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                return str(host) + value[len(mount_path.rstrip("/")):]
        return value
    if isinstance(value, list):
        return [translate(item, mounts) for item in value]
    if isinstance(value, dict):
        return {key: translate(item, mounts) for key, item in value.items()}
    return value


def field_value(pod: Any, path: str) -> str:
    """The value of a `fieldRef` (`metadata.name`, `metadata.labels['key']`, ...) on `pod`."""
    metadata = pod.metadata
    simple = {"metadata.name": metadata.name, "metadata.namespace": metadata.namespace,
              "metadata.uid": metadata.uid, "spec.nodeName": NODE_NAME}
    if path in simple:
        return str(simple[path] or "")
    for field, found in (("metadata.labels", metadata.labels),
                         ("metadata.annotations", metadata.annotations)):
        if path.startswith(f"{field}['") and path.endswith("']"):
            return str((found or {}).get(path[len(field) + 2:-2], ""))
    raise ValueError(f"fieldRef {path} is not supported by the test kubelet")


def translate_env_value(value: str, mounts: dict[str, Path]) -> str:
    """An env value with mounted paths rewritten, including inside a JSON document."""
    if value[:1] in "{[":
        try:
            return json.dumps(translate(json.loads(value), mounts))
        except ValueError:
            pass
    return str(translate(value, mounts))


class KubeletAgent:
    """Plays the kubelet for one namespace until stopped."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str, workdir: Path,
                 extra_env: dict[str, str] | None = None, in_image: bool | None = None) -> None:
        self.core: Any = kubernetes.client.CoreV1Api(api)
        self.namespace = namespace
        self.workdir = workdir
        self.extra_env = extra_env or {}
        self.in_image = os.environ.get(PODS_ENV) == "image" if in_image is None else in_image
        self.images_run: list[str] = []
        """The image of each pod started in its image, in start order."""
        self.running: dict[str, RunningPod] = {}
        self.ports: dict[str, int] = {}
        """The local port standing for each worker hostname."""
        self.finished: set[str] = set()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubelet-agent", daemon=True)
        self._last_heartbeat = 0.0

    def start(self) -> KubeletAgent:
        """Register the node and start serving pods."""
        if self.in_image and not containers.podman().has_image(image.image_name("workload")):
            containers.load(image.archive_path("workload"))
        self._ensure_node()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; kill processes still running."""
        self._stop.set()
        self._thread.join(timeout=10)
        for pod in self.running.values():
            if pod.process.poll() is None:
                pod.process.kill()
                pod.process.wait(timeout=10)
            if pod.container_id is not None:
                containers.remove(pod.container_id)

    def claim_folder(self, claim: str) -> Path:
        """The host folder that stands for a PersistentVolumeClaim."""
        return self.workdir / "claims" / claim

    def logs(self) -> str:
        """Every pod's output, for failure messages."""
        parts = []
        for log in sorted(self.workdir.glob("*/container.log")):
            parts.append(f"--- {log.parent.name}\n{log.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts + self.errors)

    # ------------------------------------------------------------ node

    def _ensure_node(self) -> None:
        try:
            self.core.create_node({"metadata": {"name": NODE_NAME,
                                                "labels": {"kubernetes.io/hostname": NODE_NAME}}})
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise
        self._heartbeat()

    def _heartbeat(self) -> None:
        moment = _now()
        self.core.patch_node_status(NODE_NAME, {"status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "local process runner", "lastHeartbeatTime": moment,
            "lastTransitionTime": moment}]}})
        self._last_heartbeat = time.monotonic()

    # ------------------------------------------------------------ loop

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if time.monotonic() - self._last_heartbeat > HEARTBEAT_S:
                    self._heartbeat()
                self._sync()
            except Exception as error:  # keep serving; the test sees the error in logs()
                self.errors.append(f"agent error: {error!r}")
            self._stop.wait(POLL_S)

    def _sync(self) -> None:
        pods = self.core.list_namespaced_pod(self.namespace).items
        present = {pod.metadata.name for pod in pods}
        for pod in pods:
            name = pod.metadata.name
            if pod.metadata.deletion_timestamp is not None:
                self._kill_and_remove(pod)
            elif pod.status.phase in ("Succeeded", "Failed"):
                continue
            elif (name not in self.running and name not in self.finished
                  and pod.spec.node_name in (None, NODE_NAME)):
                self._start(pod)
        for name, running in list(self.running.items()):
            if name not in present:
                self._kill(running)
                del self.running[name]
            elif running.process.poll() is not None:
                self._report_exit(running)
                del self.running[name]
                self.finished.add(name)

    # ------------------------------------------------------------ pods

    def _bind(self, pod: Any) -> None:
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod.metadata.name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME}}
        self.core.create_namespaced_pod_binding(pod.metadata.name, self.namespace, body,
                                                _preload_content=False)

    def _volumes(self, pod: Any, folder: Path) -> dict[str, Path]:
        """Host folders for the container's mounts: a PersistentVolumeClaim is one folder shared
        by every pod that claims it (its `subPath` a folder inside); Secrets are written out as
        files; others are per pod."""
        by_name = {volume.name: volume for volume in pod.spec.volumes or []}
        mounts: dict[str, Path] = {}
        for mount in pod.spec.containers[0].volume_mounts or []:
            volume = by_name.get(mount.name)
            claim = volume.persistent_volume_claim if volume is not None else None
            host = (self.claim_folder(claim.claim_name) / (mount.sub_path or "")
                    if claim is not None else folder / "volumes" / mount.name)
            host.mkdir(parents=True, exist_ok=True)
            if volume is not None and volume.secret is not None:
                secret = self.core.read_namespaced_secret(volume.secret.secret_name,
                                                          self.namespace)
                for key, encoded in (secret.data or {}).items():
                    (host / key).write_bytes(base64.b64decode(encoded))
            if volume is not None and volume.projected is not None:
                self._project(pod, volume.projected, host)
            mounts[mount.mount_path] = host
        return mounts

    def _project(self, pod: Any, projected: Any, host: Path) -> None:
        """Write each projected service-account token (a TokenRequest bound to the pod) and
        ConfigMap item (an optional ConfigMap that is missing writes nothing)."""
        for source in projected.sources or []:
            if source.config_map is not None:
                self._project_config_map(source.config_map, host)
            request = source.service_account_token
            if request is None:
                continue
            token = self.core.create_namespaced_service_account_token(
                pod.spec.service_account_name or "default", self.namespace, {"spec": {
                    "audiences": [request.audience],
                    "expirationSeconds": request.expiration_seconds or 3600,
                    "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                       "name": pod.metadata.name, "uid": pod.metadata.uid}}})
            (host / request.path).write_text(token.status.token)

    def _project_config_map(self, source: Any, host: Path) -> None:
        try:
            found = self.core.read_namespaced_config_map(source.name, self.namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404 and source.optional:
                return
            raise
        data = found.data or {}
        for item in source.items or [{"key": key, "path": key} for key in data]:
            key, path = (item["key"], item["path"]) if isinstance(item, dict) else (item.key,
                                                                                    item.path)
            if key in data:
                (host / path).write_text(data[key])

    def _start(self, pod: Any) -> None:
        if pod.spec.node_name is None:
            self._bind(pod)
        container = pod.spec.containers[0]
        folder = self.workdir / pod.metadata.name
        folder.mkdir(parents=True, exist_ok=True)
        mounts = self._volumes(pod, folder)
        termination_log = folder / "termination-log"
        termination_log.write_text("")
        command = [*(container.command or []), *(container.args or [])]
        log = folder / "container.log"
        container_id = None
        with log.open("wb") as sink:
            if self.in_image:
                container_id = f"{self.namespace}-{pod.metadata.name}"
                argv = self._image_command(pod, mounts, termination_log, command, container_id)
                process = subprocess.Popen(argv, env=containers.environment(), stdout=sink,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                self.images_run.append(container.image)
            else:
                env = {"PATH": os.environ.get("PATH", ""), **self.extra_env,
                       **self._pod_environment(pod, mounts),
                       TERMINATION_LOG_ENV: str(termination_log)}
                program = (shutil.which(command[0], path=str(Path(sys.executable).parent))
                           or command[0])
                process = subprocess.Popen([program, *command[1:]], env=env, cwd=folder,
                                           stdout=sink, stderr=subprocess.STDOUT)
        started = _now()
        self.running[pod.metadata.name] = RunningPod(
            pod.metadata.name, container.name, container.image, process, folder, log,
            termination_log, container.termination_message_policy == "FallbackToLogsOnError",
            started, container_id)
        self._patch_status(pod.metadata.name, {
            "phase": "Running", "startTime": started,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": started}],
            "containerStatuses": [self._container_status(
                container.name, container.image, {"running": {"startedAt": started}})]})

    def _image_command(self, pod: Any, mounts: dict[str, Path], termination_log: Path,
                       command: list[str], container_id: str) -> list[str]:
        """`podman run` for the pod's container: its image, environment and user, its volumes
        at their mount paths (owned by its user, as `fsGroup` makes them writable)."""
        container = pod.spec.containers[0]

        def security(field: str) -> Any:
            """A securityContext field: the container's, else the pod's."""
            for context in (container.security_context, pod.spec.security_context):
                value = getattr(context, field, None)
                if value is not None:
                    return value
            return None

        uid, gid = security("run_as_user"), security("run_as_group")
        owner = (uid or 0, security("fs_group") or gid or uid or 0)
        read_only = {mount.mount_path: bool(mount.read_only)
                     for mount in container.volume_mounts or []}
        binds = [containers.Mount(host, path, read_only[path]) for path, host in mounts.items()]
        binds.append(containers.Mount(
            termination_log, container.termination_message_path or TERMINATION_LOG))
        for bind in binds:
            for path in (bind.host, *bind.host.rglob("*")):
                os.chown(path, *owner)
        env = {**self.extra_env, **self._pod_environment(pod, None)}
        return containers.run_command(
            container.image, command, name=container_id, env=env, mounts=binds,
            user=None if uid is None else f"{uid}:{gid if gid is not None else uid}",
            read_only=bool(security("read_only_root_filesystem")))

    def _pod_environment(self, pod: Any, mounts: dict[str, Path] | None) -> dict[str, str]:
        """The container's environment as the kubelet resolves it: values (with mounted paths
        rewritten when the pod runs as a process: `mounts`), `fieldRef`s, and a training
        group's workers on loopback."""
        env: dict[str, str] = {}
        for item in pod.spec.containers[0].env or []:
            if item.value is not None:
                env[item.name] = (item.value if mounts is None
                                  else translate_env_value(item.value, mounts))
            elif item.value_from is not None and item.value_from.field_ref is not None:
                env[item.name] = field_value(pod, item.value_from.field_ref.field_path)
        if WORKERS_ENV in env:
            env[WORKERS_ENV] = ",".join(self._local_address(address)
                                        for address in env[WORKERS_ENV].split(","))
        return env

    def _local_address(self, address: str) -> str:
        """`host:port` of a worker as the pods on this host reach it: loopback, a port per host."""
        host = address.rsplit(":", 1)[0]
        if host not in self.ports:
            self.ports[host] = free_port()
        return f"{LOOPBACK}:{self.ports[host]}"

    @staticmethod
    def _container_status(name: str, image: str, state: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "image": image, "imageID": "", "ready": "running" in state,
                "restartCount": 0, "started": "running" in state, "state": state}

    def _report_exit(self, running: RunningPod) -> None:
        code = int(running.process.returncode)
        code = 128 - code if code < 0 else code  # killed by a signal, as a runtime reports it
        message = running.termination_log.read_text(errors="replace").strip()
        if not message and code != 0 and running.fallback_to_logs:
            message = running.log.read_bytes()[-LOG_TAIL_BYTES:].decode(errors="replace")
        finished = _now()
        self._patch_status(running.name, {
            "phase": "Succeeded" if code == 0 else "Failed",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": finished}],
            "containerStatuses": [self._container_status(running.container, running.image, {
                "terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                               "message": message, "startedAt": running.started_at,
                               "finishedAt": finished}})]})

    def _patch_status(self, name: str, status: dict[str, Any]) -> None:
        try:
            self.core.patch_namespaced_pod_status(name, self.namespace, {"status": status})
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise

    @staticmethod
    def _kill(running: RunningPod) -> None:
        if running.process.poll() is None:
            running.process.terminate()  # podman passes the signal on to the container
            try:
                running.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait(timeout=10)
        if running.container_id is not None:
            containers.remove(running.container_id)

    def _kill_and_remove(self, pod: Any) -> None:
        running = self.running.pop(pod.metadata.name, None)
        if running is not None:
            self._kill(running)
        try:
            self.core.delete_namespaced_pod(pod.metadata.name, self.namespace,
                                            grace_period_seconds=0)
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise
