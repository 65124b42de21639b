"""`make bench-operator`: the operator with 200 (or `--jobs`) jobs on the real control plane.

One process starts a Kubernetes control plane and a Kafka broker on
loopback, installs the CRD and runs the operator as the tests do, watching
two namespaces:

- `scale`: `--jobs` train-only jobs, created one after the other at
  `--apply-rate` per second. No kubelet serves that namespace, so a job
  needs only its child Job created: the figure is the time from each create
  call to the moment a watch on Jobs sees its child (p50, p95, p99), and the
  API requests the operator made meanwhile, per job and per reconcile pass
  (reads among them: a pass reads from the watches, so none). Then every
  pod there is finished the way a kubelet would (exit 0, a train report as
  its termination message), so every job reaches Succeeded.
- `kubelet`: `--kubelet-jobs` small jobs (train, then evaluate) whose pods
  the test kubelet runs for real against the broker.

Around that, the operator's Kubernetes API requests per minute while
nothing happens (`streamtrain_api_requests_total`), once before any job
exists and once with every job finished; the operator resyncs every
`RESYNC_S` here, so each window holds resyncs. Then its CPU seconds and
peak resident memory (from /proc). It prints a table against the goals and
writes JSON, whose path it prints last; the exit code is 0 only when every
goal is met.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import kubernetes
import urllib3
from rich.console import Console
from rich.table import Table

from bench.harness import machine
from localparts import controlplane
from localparts import kafka as local_kafka
from tests.e2e.harness import (
    Jobs,
    OperatorProcess,
    eventually,
    finish_pod,
    fresh_split,
    install_streamtrain_crd,
)
from tests.e2e.kubelet_agent import KubeletAgent
from workload.status import Metrics, PodReport

RESYNC_S = 20.0
"""The operator's resync interval in this benchmark (300 s by default): a few per idle window."""

IDLE_S = 60.0
"""Seconds of each idle window."""

GOAL_P95_S = {200: 0.5, 1000: 1.0}
"""Seconds from apply to child Job (p95) the operator must beat, by jobs applied (up to)."""
GOAL_RSS_MIB = 250.0


def p95_goal(jobs: int) -> float:
    """The p95 goal for `jobs` jobs (the one of the next larger size measured)."""
    return next((goal for size, goal in sorted(GOAL_P95_S.items()) if jobs <= size),
                max(GOAL_P95_S.values()))

TRAINED = PodReport(mode="train", ok=True, epoch=1,
                    metrics=Metrics(train_loss=0.5, train_accuracy=0.75)).to_message()
"""What a finished scale pod reports (no training runs there)."""


def percentile(values: list[float], share: float) -> float:
    """The `share` quantile (0-1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def scrape(operator: OperatorProcess, name: str) -> float:
    """The sum of a metric's samples on the operator's `/metrics` page."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def idle_requests_per_minute(operator: OperatorProcess, console: Console, what: str) -> float:
    """The operator's API requests per minute over `IDLE_S` seconds of nothing happening."""
    console.print(f"[dim]idle {IDLE_S:.0f} s ({what}) ...[/dim]")
    before = scrape(operator, "streamtrain_api_requests_total")
    time.sleep(IDLE_S)
    return (scrape(operator, "streamtrain_api_requests_total") - before) * 60.0 / IDLE_S


def process_usage(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) and peak resident memory (MiB) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak_kib = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
                    .splitlines() if line.startswith("VmHWM:"))
    return cpu, peak_kib / 1024


class JobWatch:
    """When each child Job of a namespace was first seen, by a watch stream."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.batch: Any = kubernetes.client.BatchV1Api(api)
        self.namespace = namespace
        self.seen: dict[str, float] = {}
        self._watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> JobWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._watch.stop()  # type: ignore[no-untyped-call]

    def _run(self) -> None:
        events = self._watch.stream(  # type: ignore[no-untyped-call]
            self.batch.list_namespaced_job, self.namespace, timeout_seconds=3600)
        try:
            for event in events:
                self.seen.setdefault(event["object"].metadata.name, time.monotonic())
        except urllib3.exceptions.ProtocolError:
            pass  # the control plane stopped under the stream: the figures are taken by then


def scale_spec(index: int) -> dict[str, Any]:
    """A job that needs only its child Job created."""
    return {"kafka": {"bootstrapServers": "kafka.invalid:9092"},
            "train": {"topic": f"scale-{index % 10}", "epochs": 1}}


def kubelet_spec(bootstrap: str, train: str, test: str, index: int) -> dict[str, Any]:
    """A small job that really trains and evaluates."""
    return {"kafka": {"bootstrapServers": bootstrap},
            "train": {"topic": train, "epochs": 1},
            "evaluate": {"topic": test, "consumerGroup": f"bench-{index}", "streamTimeoutMs": 2000},
            "model": {"layers": [{"dense": 16}],
                      "output": {"path": "/models/bench", "volumeClaim": "models"}}}


def run(arguments: argparse.Namespace, console: Console) -> dict[str, Any]:
    """The whole benchmark; its figures."""
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-operator-")))
        console.print("[dim]starting a control plane and a Kafka broker ...[/dim]")
        plane = controlplane.start(work / "controlplane")
        stack.callback(plane.stop)
        broker = local_kafka.start(work / "kafka")
        stack.callback(broker.stop)
        api = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(plane.kubeconfig))
        core: Any = kubernetes.client.CoreV1Api(api)
        for namespace in ("scale", "kubelet"):
            core.create_namespace({"metadata": {"name": namespace}})
        install_streamtrain_crd(api)
        operator = OperatorProcess(plane.kubeconfig, "scale,kubelet", work / "operator.log",
                                   settings={"RESYNC_INTERVAL_S": str(RESYNC_S)}).start()
        stack.callback(operator.stop)
        eventually(lambda: _answers(operator), 60, "the operator's metrics", operator.tail)
        assert operator.process is not None
        figures: dict[str, Any] = {"jobs": arguments.jobs, "kubelet_jobs": arguments.kubelet_jobs,
                                   "resync_s": RESYNC_S, "idle_window_s": IDLE_S}
        figures["idle_rpm_no_jobs"] = idle_requests_per_minute(operator, console, "no jobs")

        scale, watch = Jobs(api, "scale"), JobWatch(api, "scale").start()
        stack.callback(watch.stop)
        console.print(f"[dim]creating {arguments.jobs} jobs at {arguments.apply_rate}/s ...[/dim]")
        requests_before = scrape(operator, "streamtrain_api_requests_total")
        reads_before = (scrape(operator, 'streamtrain_api_requests_total{verb="GET"}')
                        - scrape(operator, "streamtrain_resync_lists_total"))
        passes_before = scrape(operator, "streamtrain_reconcile_seconds_count")
        applied: dict[str, float] = {}
        started = time.monotonic()
        for index in range(arguments.jobs):
            name = f"job-{index:03d}"
            due = started + index / arguments.apply_rate
            time.sleep(max(0.0, due - time.monotonic()))
            applied[name] = time.monotonic()
            scale.create(name, scale_spec(index))
        eventually(lambda: all(f"{name}-train" in watch.seen for name in applied), 300,
                   "every child Job", operator.tail)
        latencies = [watch.seen[f"{name}-train"] - at for name, at in applied.items()]
        figures.update(
            apply_to_job_p50_s=statistics.median(latencies),
            apply_to_job_p95_s=percentile(latencies, 0.95),
            apply_to_job_p99_s=percentile(latencies, 0.99),
            apply_to_job_max_s=max(latencies),
            apply_seconds=time.monotonic() - started)
        eventually(lambda: len(scale.core.list_namespaced_pod("scale").items) >= arguments.jobs,
                   300, "a pod per job", operator.tail)
        time.sleep(2.0)  # the passes the pods' own events start
        requests = scrape(operator, "streamtrain_api_requests_total") - requests_before
        passes = scrape(operator, "streamtrain_reconcile_seconds_count") - passes_before
        figures["requests_per_job_to_running"] = requests / arguments.jobs
        figures["requests_per_pass"] = requests / max(passes, 1.0)
        figures["resync_lists"] = scrape(operator, "streamtrain_resync_lists_total")
        figures["reads_per_pass"] = (scrape(operator, 'streamtrain_api_requests_total{verb="GET"}')
                                     - figures["resync_lists"] - reads_before) / max(passes, 1.0)
        figures["machine_load_during_apply"] = os.getloadavg()[0]

        console.print(f"[dim]{arguments.kubelet_jobs} jobs trained by the test kubelet ...[/dim]")
        agent = KubeletAgent(api, "kubelet", work / "pods").start()
        stack.callback(agent.stop)
        train, test = fresh_split(broker.bootstrap_servers, 2000, 500, seed=11)
        kubelet = Jobs(api, "kubelet")
        for index in range(arguments.kubelet_jobs):
            kubelet.create(f"real-{index}", kubelet_spec(broker.bootstrap_servers, train, test,
                                                         index))

        console.print("[dim]finishing the scale pods as a kubelet would ...[/dim]")
        finishing = time.monotonic()
        for pod in scale.core.list_namespaced_pod("scale").items:
            finish_pod(scale.core, pod, 0, TRAINED)
        eventually(lambda: all(scale.phase(name) == "Succeeded" for name in applied), 600,
                   "every scale job to succeed", operator.tail)
        figures["finish_seconds"] = time.monotonic() - finishing
        real = [f"real-{index}" for index in range(arguments.kubelet_jobs)]
        eventually(lambda: all(kubelet.phase(name) in ("Succeeded", "Failed") for name in real),
                   900, "the kubelet jobs", lambda: f"{operator.tail()}\n{agent.logs()}")
        figures["kubelet_jobs_succeeded"] = sum(kubelet.phase(name) == "Succeeded"
                                                for name in real)
        agent.stop()
        time.sleep(2.0)  # the last status writes' own watch events
        figures["finished_jobs"] = arguments.jobs + arguments.kubelet_jobs
        figures["idle_rpm_all_finished"] = idle_requests_per_minute(
            operator, console, f"{figures['finished_jobs']} finished jobs")
        figures["operator_cpu_s"], figures["operator_peak_rss_mib"] = process_usage(
            operator.process.pid)
        figures["reconcile_passes"] = scrape(operator, "streamtrain_reconcile_seconds_count")
        figures["api_requests"] = scrape(operator, "streamtrain_api_requests_total")
        figures["reconcile_errors"] = scrape(operator, "streamtrain_reconcile_errors_total")
        return figures


def _answers(operator: OperatorProcess) -> bool:
    try:
        scrape(operator, "streamtrain_jobs")
    except OSError:
        return False
    return True


def goals(figures: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(figure, measured, goal, met) rows."""
    goal = p95_goal(int(figures["jobs"]))
    return [
        ("apply -> Job created, p95", f"{figures['apply_to_job_p95_s']:.3f} s",
         f"<= {goal} s at {figures['jobs']} jobs", figures["apply_to_job_p95_s"] <= goal),
        ("apply -> Job created, p50 / p99",
         f"{figures['apply_to_job_p50_s']:.3f} s / {figures['apply_to_job_p99_s']:.3f} s", "",
         True),
        ("API reads (GET or LIST) per reconcile pass (besides the resyncs' lists)",
         f"{figures['reads_per_pass']:.2f} ({figures['resync_lists']:.0f} lists)",
         "0 (from the watches)", figures["reads_per_pass"] == 0),
        ("API requests per reconcile pass", f"{figures['requests_per_pass']:.2f}", "", True),
        ("load average (1 min) at the end of the apply",
         f"{figures['machine_load_during_apply']:.1f}", "", True),
        ("operator peak RSS", f"{figures['operator_peak_rss_mib']:.0f} MiB",
         f"< {GOAL_RSS_MIB:.0f} MiB", figures["operator_peak_rss_mib"] < GOAL_RSS_MIB),
        ("operator CPU", f"{figures['operator_cpu_s']:.1f} s", "", True),
        ("idle API requests/min, no jobs", f"{figures['idle_rpm_no_jobs']:.1f}", "", True),
        (f"idle API requests/min, {figures['finished_jobs']} finished jobs",
         f"{figures['idle_rpm_all_finished']:.1f}", "= with no jobs",
         figures["idle_rpm_all_finished"] <= figures["idle_rpm_no_jobs"]),
        ("API requests per job, apply to pod", f"{figures['requests_per_job_to_running']:.1f}",
         "", True),
        ("jobs run by the test kubelet, succeeded",
         f"{figures['kubelet_jobs_succeeded']}/{figures['kubelet_jobs']}", "all",
         figures["kubelet_jobs_succeeded"] == figures["kubelet_jobs"]),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write the JSON; 0 when every goal is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--kubelet-jobs", type=int, default=3)
    parser.add_argument("--apply-rate", type=float, default=20.0,
                        help="jobs created per second (default 20)")
    parser.add_argument("--output", type=Path, default=Path("bench-operator-results.json"))
    arguments = parser.parse_args(argv)
    console = Console()
    figures = run(arguments, console)
    rows = goals(figures)
    table = Table(title=f"streamtrain operator, {arguments.jobs} jobs on the real control plane")
    for column in ("figure", "measured", "goal", "met"):
        table.add_column(column)
    for name, measured, goal, met in rows:
        table.add_row(name, measured, goal, "yes" if met else "[red]no[/red]")
    console.print(table)
    document = {"machine": machine(), "figures": figures,
                "goals": [{"figure": name, "measured": measured, "goal": goal, "met": met}
                          for name, measured, goal, met in rows]}
    arguments.output.write_text(json.dumps(document, indent=1))
    print(arguments.output)
    return 0 if all(met for *_, met in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
