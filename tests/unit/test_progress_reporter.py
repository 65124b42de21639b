"""The pod's progress reporter: rates, percent and time left from what was done; never in the way."""

from __future__ import annotations

import json
from pathlib import Path

from workload.contract import PROGRESS_TOKEN_ENV, PROGRESS_URL_ENV
from workload.progress import FINAL_ATTEMPTS, Reporter, active, channel, report


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
    last = json.loads(sent[-1])
    assert last.pop("recordsPerSecond") > 0  # from the phase's start: its first post
    assert last == {"mode": "online", "records": 42, "accuracy": 0.5}


def test_the_first_post_has_a_rate_and_time_left_from_the_phase_start(tmp_path: Path) -> None:
    sent: list[tuple[str, str, dict[str, object]]] = []
    clock = Clock()
    reporter = _reporter(tmp_path, sent, clock)  # the phase starts
    clock.now += 5
    reporter.update(records=100, records_total=1000, epoch=0, epochs=1)
    reporter.flush(force=False)
    first = sent[0][2]
    assert (first["recordsPerSecond"], first["etaSeconds"], first["percent"]) == (20.0, 45, 10.0)


def test_a_first_post_with_nothing_done_sets_no_rate(tmp_path: Path) -> None:
    sent: list[tuple[str, str, dict[str, object]]] = []
    clock = Clock()
    reporter = _reporter(tmp_path, sent, clock)
    clock.now += 3
    reporter.update(records=0, records_total=1000)
    reporter.flush(force=False)
    assert "recordsPerSecond" not in sent[0][2] and "etaSeconds" not in sent[0][2]


def test_each_step_of_the_percent_is_posted_in_order_however_fast_the_phase(
        tmp_path: Path) -> None:
    """A phase done within one posting interval (the clock never moves here) still posts the
    figures of the moment it entered each 10 % step, in order: its progress is seen rising."""
    sent: list[tuple[str, str, dict[str, object]]] = []
    reporter = _reporter(tmp_path, sent, Clock())
    for records in range(0, 1001, 25):
        reporter.update(records=records, records_total=1000, epoch=records // 500, epochs=2)
    reporter.post_steps()
    assert [body["percent"] for _, _, body in sent] == [10.0 * step for step in range(11)]
    assert [body["records"] for _, _, body in sent] == list(range(0, 1001, 100))
    reporter.post_steps()
    reporter.flush(force=False)
    assert len(sent) == 11, "the last step carried the latest figures: nothing more to post"


def test_the_posting_thread_delivers_every_step_of_a_burst_before_it_stops(
        tmp_path: Path) -> None:
    sent: list[bytes] = []
    token = tmp_path / "token"
    token.write_text("t")
    environ = {PROGRESS_URL_ENV: "http://operator/progress/ns/job", PROGRESS_TOKEN_ENV: str(token)}
    with channel("evaluate", environ, send=lambda url, bearer, body: sent.append(body)):
        for records in range(0, 401):
            report(records=records, records_total=400)
    percents = [json.loads(body)["percent"] for body in sent]
    assert percents == sorted(percents)
    assert {10.0 * step for step in range(11)} <= set(percents)


def test_a_phase_s_last_post_is_tried_again_when_it_fails(tmp_path: Path) -> None:
    sent: list[bytes] = []
    failures = [ConnectionResetError("reset"), TimeoutError("timed out")]

    def flaky(url: str, token: str, body: bytes) -> None:
        if failures:
            raise failures.pop(0)
        sent.append(body)

    token = tmp_path / "token"
    token.write_text("t")
    reporter = Reporter("online", "http://operator/progress/ns/job", token, flaky)
    reporter.update(records=7, accuracy=0.5)  # e.g. the figures of the final export
    reporter.close()
    assert [json.loads(body)["records"] for body in sent] == [7]  # third time, once


def test_a_phase_s_last_post_is_given_up_after_its_attempts(tmp_path: Path) -> None:
    tried: list[bytes] = []

    def refuse(url: str, token: str, body: bytes) -> None:
        tried.append(body)
        raise ConnectionRefusedError("nobody listens")

    token = tmp_path / "token"
    token.write_text("t")
    reporter = Reporter("online", "http://operator/progress/ns/job", token, refuse)
    reporter.update(records=7)
    reporter.close()  # returns: the pod ends, its figures in the termination message
    assert len(tried) == FINAL_ATTEMPTS
