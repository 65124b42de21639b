"""The Argo CD health check of a StreamingTrainingJob, run as Lua on sample objects.

Argo CD runs health checks in gopher-lua (Lua 5.1), with the object as the
global `obj`; lupa's Lua 5.1 runtime runs the same file the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from lupa import lua51

HEALTH_KEY = "resource.customizations.health.streamtrain.dev_StreamingTrainingJob"


@pytest.fixture(scope="module")
def script(repo_root: Path) -> str:
    return (repo_root / "gitops" / "argocd" / "health-streamingtrainingjob.lua").read_text()


def health(script: str, obj: dict[str, Any]) -> tuple[str, str]:
    """The (status, message) that Argo CD would show for ``obj``."""
    runtime = lua51.LuaRuntime()
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(script)
    return str(result["status"]), str(result["message"] or "")


def job(status: dict[str, Any] | None = None, generation: int = 1, **spec: Any) -> dict[str, Any]:
    """A StreamingTrainingJob as the API server returns it."""
    document: dict[str, Any] = {
        "apiVersion": "streamtrain.dev/v1alpha1",
        "kind": "StreamingTrainingJob",
        "metadata": {"name": "susy", "namespace": "ml", "generation": generation},
        "spec": {"kafka": {"bootstrapServers": "kafka:9092"}, **spec},
    }
    if status is not None:
        document["status"] = status
    return document


def condition(kind: str, status: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": "Test", "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z"}


def test_it_should_be_progressing_before_the_operator_writes_a_status(script: str) -> None:
    status, message = health(script, job())
    assert status == "Progressing"
    assert "operator" in message


@pytest.mark.parametrize("phase", ["Pending", "Training", "Evaluating"])
def test_it_should_be_progressing_while_training_or_evaluating(script: str, phase: str) -> None:
    status, message = health(script, job({"phase": phase, "observedGeneration": 1}))
    assert status == "Progressing"
    assert phase in message


def test_it_should_show_the_epoch_while_training(script: str) -> None:
    status, message = health(
        script, job({"phase": "Training", "observedGeneration": 1, "progress": {"epoch": 3}})
    )
    assert (status, message) == ("Progressing", "Training, epoch 3 done")


def test_it_should_be_healthy_with_the_accuracy_when_succeeded(script: str) -> None:
    status, message = health(
        script,
        job({"phase": "Succeeded", "observedGeneration": 1, "metrics": {"evalAccuracy": 0.7891}}),
    )
    assert status == "Healthy"
    assert "0.7891" in message


def test_it_should_be_healthy_with_the_tasks_headline_when_succeeded(script: str) -> None:
    status, message = health(script, job({
        "phase": "Succeeded", "observedGeneration": 1,
        "metrics": {"evalMetric": "rmse", "evalValue": 2.0363, "evalRmse": 2.0363}}))
    assert (status, message) == ("Healthy", "Succeeded, evaluation rmse 2.0363")


def test_it_should_be_healthy_while_learning_online(script: str) -> None:
    status, message = health(
        script, job({"phase": "Online", "observedGeneration": 1, "metrics": {"recordsOnline": 42}})
    )
    assert status == "Healthy"
    assert "42 records" in message


def test_it_should_be_healthy_while_serving_with_the_model_version(script: str) -> None:
    status, message = health(script, job({
        "phase": "Serving", "observedGeneration": 1,
        "serving": {"version": "trained-3fa2c19b0d4e", "recordsServed": 7}}))
    assert status == "Healthy"
    assert "trained-3fa2c19b0d4e" in message and "7 predictions" in message


def test_it_should_be_degraded_with_the_reason_when_failed(script: str) -> None:
    obj = job({"phase": "Failed", "observedGeneration": 1,
               "conditions": [condition("Failed", "True", "topic susy-train does not exist")]})
    assert health(script, obj) == ("Degraded", "topic susy-train does not exist")


def test_it_should_be_degraded_on_a_failed_condition_whatever_the_phase(script: str) -> None:
    obj = job({"phase": "Training", "observedGeneration": 1,
               "conditions": [condition("Failed", "True", "backoff limit reached")]})
    assert health(script, obj)[0] == "Degraded"


def test_it_should_ignore_a_failed_condition_that_does_not_hold(script: str) -> None:
    obj = job({"phase": "Training", "observedGeneration": 1,
               "conditions": [condition("Failed", "False")]})
    assert health(script, obj)[0] == "Progressing"


def test_it_should_be_suspended_when_the_phase_says_so(script: str) -> None:
    assert health(script, job({"phase": "Suspended", "observedGeneration": 1}))[0] == "Suspended"


def test_it_should_be_suspended_as_soon_as_the_spec_asks(script: str) -> None:
    obj = job({"phase": "Training", "observedGeneration": 1}, runPolicy={"suspend": True})
    assert health(script, obj)[0] == "Suspended"


def test_it_should_be_progressing_until_the_operator_sees_the_latest_spec(script: str) -> None:
    obj = job({"phase": "Succeeded", "observedGeneration": 1}, generation=2)
    status, message = health(script, obj)
    assert status == "Progressing"
    assert "generation 2" in message


def test_it_should_say_unknown_for_a_phase_it_does_not_know(script: str) -> None:
    assert health(script, job({"phase": "Exploded", "observedGeneration": 1}))[0] == "Unknown"


def test_it_should_map_every_phase_the_operator_writes(script: str) -> None:
    from workload.contract import Phase

    for phase in get_args(Phase):
        assert health(script, job({"phase": phase, "observedGeneration": 1}))[0] != "Unknown"


def test_it_should_ship_the_same_lua_in_the_argocd_configmap(script: str, repo_root: Path) -> None:
    path = repo_root / "gitops" / "argocd" / "argocd-cm-health.yaml"
    configmap = yaml.safe_load(path.read_text())
    assert configmap["metadata"]["name"] == "argocd-cm"
    assert configmap["data"][HEALTH_KEY] == script
