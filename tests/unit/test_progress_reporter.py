"""The pod's progress reporter: rates, percent and time left from what was done; never in the way."""

from __future__ import annotations

import json
from pathlib import Path

from workload.contract import PROGRESS_TOKEN_ENV, PROGRESS_URL_ENV
from workload.progress import Reporter, active, channel, report


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _reporter(tmp_path: Path, sent: list[tuple[str, str, dict[str, object]]],
              clock: Clock) -> Reporter:
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    return Reporter("train", "http://operator/progress/ns/job", token,
                    lambda url, bearer, body: sent.append((url, bearer, json.loads(body))),
                    clock)


def test_figures_are_posted_with_rate_percent_and_time_left(tmp_path: Path) -> None:
    sent: list[tuple[str, str, dict[str, object]]] = []
    clock = Clock()
    reporter = _reporter(tmp_path, sent, clock)
    reporter.update(records=0, records_total=1000, epoch=0, epochs=2)
    assert reporter.flush(force=False)
    clock.now += 10
    reporter.update(records=200, loss=0.61, accuracy=0.7)
    reporter.flush(force=False)
    url, bearer, body = sent[-1]
    assert (url, bearer) == ("http://operator/progress/ns/job", "secret-token")
    assert body == {"mode": "train", "records": 200, "recordsTotal": 1000, "epoch": 0,
                    "epochs": 2, "recordsPerSecond": 20.0, "percent": 20.0, "etaSeconds": 40,
                    "loss": 0.61, "accuracy": 0.7}


def test_nothing_is_posted_unless_figures_changed_or_a_heartbeat_is_due(tmp_path: Path) -> None:
    sent: list[tuple[str, str, dict[str, object]]] = []
    reporter = _reporter(tmp_path, sent, Clock())
    reporter.update(records=5)
    reporter.flush(force=False)
    reporter.flush(force=False)
    assert len(sent) == 1
    reporter.flush(force=True)
    assert len(sent) == 2


def test_an_unreachable_endpoint_is_reported_not_raised(tmp_path: Path) -> None:
    def refuse(url: str, token: str, body: bytes) -> None:
        raise ConnectionRefusedError("nobody listens")

    token = tmp_path / "token"
    token.write_text("t")
    reporter = Reporter("evaluate", "http://127.0.0.1:9/progress/a/b", token, refuse)
    reporter.update(records=1)
    assert reporter.flush(force=True) is False


def test_outside_a_pod_report_does_nothing(tmp_path: Path) -> None:
    with channel("online", environ={}) as reporter:
        assert reporter is None and not active()  # so training adds no per-batch callback
        report(records=3)  # no channel: a no-op


def test_in_a_pod_the_displays_reach_the_reporter(tmp_path: Path) -> None:
    sent: list[bytes] = []
    token = tmp_path / "token"
    token.write_text("t")
    environ = {PROGRESS_URL_ENV: "http://operator/progress/ns/job", PROGRESS_TOKEN_ENV: str(token)}
    with channel("online", environ, send=lambda url, bearer, body: sent.append(body)):
        assert active()
        report(records=42, accuracy=0.5)
    assert not active()
    assert json.loads(sent[-1]) == {"mode": "online", "records": 42, "accuracy": 0.5}
