"""What the progress endpoint writes: the pod's figures, each in its range, and when work last
moved on; what it answers to bodies that are not reports."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kubernetes
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from streamtrain_operator.controller import Controller
from streamtrain_operator.metrics import OperatorMetrics
from streamtrain_operator.progress import (
    REFUSED,
    ProgressEndpoint,
    _body_problem,
    progress_status,
    stepped,
)
from streamtrain_operator.settings import OperatorSettings

from workload.status import PodReport, Progress, ProgressReport

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"


def test_the_first_report_starts_the_progress_clock() -> None:
    report = ProgressReport(mode="train", records=10, records_total=100, percent=10.0)
    progress = progress_status(report, None, T0)
    assert (progress.mode, progress.records, progress.percent) == ("train", 10, 10.0)
    assert progress.last_update_time == progress.last_progress_time == T0


def test_only_growing_records_move_the_progress_clock() -> None:
    before = Progress(mode="evaluate", records=10, last_update_time=T0, last_progress_time=T0)
    same = progress_status(ProgressReport(mode="evaluate", records=10), before, T1)
    assert (same.last_update_time, same.last_progress_time) == (T1, T0)
    grown = progress_status(ProgressReport(mode="evaluate", records=11), before, T1)
    assert grown.last_progress_time == T1
    next_phase = progress_status(ProgressReport(mode="online", records=0), before, T1)
    assert next_phase.last_progress_time == T1


def test_what_was_written_is_forgotten_when_its_job_is_gone_or_made_again() -> None:
    controller = Controller(kubernetes.client.ApiClient(), OperatorSettings(), OperatorMetrics())
    endpoint = ProgressEndpoint(kubernetes.client.ApiClient(), controller)
    progress = Progress(mode="train", records=1, last_update_time=T0, last_progress_time=T0)

    def job(name: str, uid: str) -> dict[str, Any]:
        return {"metadata": {"namespace": "ns", "name": name, "uid": uid, "generation": 1}}

    controller.observe_job("ADDED", job("kept", "u1"))
    controller.observe_job("ADDED", job("renewed", "u2"))
    controller.observe_job("ADDED", job("deleted", "u3"))
    endpoint._written.update({("ns", name): (uid, 0.0, progress) for name, uid in
                              [("kept", "u1"), ("renewed", "u2"), ("deleted", "u3")]})
    controller.observe_job("DELETED", job("deleted", "u3"))
    controller.observe_job("ADDED", job("renewed", "u4"))
    endpoint._forget_gone()
    assert list(endpoint._written) == [("ns", "kept")]


def test_a_new_phase_or_a_new_step_of_its_percent_is_written_at_once() -> None:
    """However fast a machine trains, each 10 % step reaches the resource (the 2 s limit holds
    only within a step), and no more than that: a percent going back is no new step."""
    before = Progress(mode="train", records=500, records_total=5000, percent=10.0)
    assert stepped(ProgressReport(mode="train", records=1000, records_total=5000, percent=20.0),
                   before)
    assert not stepped(ProgressReport(mode="train", records=990, records_total=5000,
                                      percent=19.8), before)
    assert not stepped(ProgressReport(mode="train", records=100, records_total=5000, percent=2.0),
                       before)
    assert stepped(ProgressReport(mode="evaluate", records=0, records_total=80, percent=0.0),
                   before)
    assert stepped(ProgressReport(mode="train", records=1), None)
    online = Progress(mode="online", records=10)
    assert not stepped(ProgressReport(mode="online", records=5000), online)


def test_within_a_phase_progress_never_goes_backwards_but_the_clock_follows_the_pod() -> None:
    before = Progress(mode="train", records=3210, records_total=10000, percent=32.1,
                      last_update_time=T0, last_progress_time=T0)
    resumed = ProgressReport(mode="train", records=2740, records_total=10000, percent=27.4)
    shown = progress_status(resumed, before, T1)
    assert (shown.percent, shown.records) == (32.1, 2740)
    assert shown.last_progress_time == T0  # fewer records than before: no work shown yet
    again = progress_status(ProgressReport(mode="train", records=2800, percent=28.0), shown,
                            "2026-01-01T00:00:07Z", previous_report=resumed)
    assert (again.percent, again.last_progress_time) == (32.1, "2026-01-01T00:00:07Z")
    evaluating = progress_status(ProgressReport(mode="evaluate", records=10, percent=1.0),
                                 again, T1)
    assert evaluating.percent == 1.0  # a new phase starts from its own figures


BAD_FIGURES = [
    ({"accuracy": 1e9}, "accuracy"), ({"auc": -7}, "auc"),
    ({"records": 10**18, "recordsTotal": 1}, "records"), ({"records": 11}, "records"),
    ({"epoch": 999, "epochs": 3}, "epoch"), ({"etaSeconds": 10**15}, "etaSeconds"),
    ({"percent": 100.5}, "percent"), ({"loss": -0.1}, "loss"),
    ({"recordsPerSecond": 1e12}, "recordsPerSecond"), ({"epochs": 0}, "epochs"),
]


@pytest.mark.parametrize(("figures", "field"), BAD_FIGURES)
def test_a_figure_out_of_range_is_refused_naming_it(figures: dict[str, Any], field: str) -> None:
    body = {"mode": "train", "records": 5, "recordsTotal": 10, "epoch": 1, "epochs": 3,
            **figures}
    with pytest.raises(ValidationError) as refused:
        ProgressReport.model_validate_json(json.dumps(body))
    assert field in _body_problem(refused.value)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_a_figure_that_is_not_a_finite_number_is_refused(literal: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ProgressReport.model_validate_json(f'{{"mode": "train", "records": 1, "loss": {literal}}}')
    assert "loss" in _body_problem(refused.value)


def test_a_pods_final_report_keeps_its_good_figures_and_drops_the_rest() -> None:
    text = json.dumps({"mode": "evaluate", "ok": True, "modelUri": "pvc://m/x",
                       "recordsPerSecond": -1,
                       "metrics": {"evalAccuracy": 1e9, "evalAuc": 0.86, "evalLoss": None,
                                   "recordsEvaluated": 400, "badRecordsByReason": {"x": -1}}})
    report = PodReport.from_message(text.replace("null", "NaN"))
    assert report is not None and report.model_uri == "pvc://m/x"
    assert report.metrics.model_dump(exclude_none=True) == {"eval_auc": 0.86,
                                                            "records_evaluated": 400}
    assert report.records_per_second is None
    assert PodReport.from_message('{"mode": "dance", "ok": true}') is None


def _endpoint(phase: str) -> ProgressEndpoint:
    """An endpoint whose job `ns/susy` is in `phase`, and whose token check lets every token
    through (the real check runs against the API server in tests/security)."""
    controller = Controller(kubernetes.client.ApiClient(), OperatorSettings(), OperatorMetrics())
    controller.observe_job("ADDED", {"metadata": {"namespace": "ns", "name": "susy",
                                                  "uid": "u1", "generation": 1},
                                     "status": {"phase": phase}})
    endpoint = ProgressEndpoint(kubernetes.client.ApiClient(), controller)

    class LetThrough:
        def problem(self, *_: object) -> None:
            return None

    endpoint.tokens = LetThrough()  # type: ignore[assignment]
    return endpoint


async def _post(endpoint: ProgressEndpoint, path: str, body: bytes,
                token: str | None = "t") -> tuple[int, str]:
    async with TestClient(TestServer(endpoint.app())) as client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await client.post(path, data=body, headers=headers)
        return response.status, await response.text()


def test_no_token_and_an_unknown_job_get_the_same_answer() -> None:
    endpoint = _endpoint("Training")
    body = b'{"mode": "train", "records": 1}'
    unknown = asyncio.run(_post(endpoint, "/progress/ns/nobody", body))
    tokenless = asyncio.run(_post(endpoint, "/progress/ns/susy", body, token=None))
    assert unknown == tokenless == (403, REFUSED)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6),
                                                                      children, max_size=3),
    max_leaves=8)
REPORTS = st.fixed_dictionaries(
    {"mode": st.sampled_from(["train", "evaluate", "online", "dance"]),
     "records": JSON_VALUES | st.integers(-5, 10**19)},
    optional={field: JSON_VALUES for field in (
        "recordsTotal", "epoch", "epochs", "recordsPerSecond", "percent", "etaSeconds", "loss",
        "accuracy", "auc")})
BODIES = (st.binary(max_size=300) | JSON_VALUES.map(lambda value: json.dumps(value).encode())
          | REPORTS.map(lambda report: json.dumps(report).encode()))


@settings(max_examples=150, deadline=None)
@given(body=BODIES)
def test_no_body_gets_a_server_error(body: bytes) -> None:
    # Suspended: a valid report is answered 409 (not written), so no API server is needed.
    status, text = asyncio.run(_post(_endpoint("Suspended"), "/progress/ns/susy", body))
    assert status in (400, 409, 413), (status, text)
