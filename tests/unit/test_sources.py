"""`model.source` resolved from the named job's resource, without a cluster."""

from __future__ import annotations

from typing import Any

import pytest
from streamtrain_operator.builders import ClaimFolder
from streamtrain_operator.sources import source_state

from workload.spec import ModelSourceSpec, SpecError

TRAINER_JOB: dict[str, Any] = {
    "metadata": {"name": "a", "uid": "uid-a"},
    "spec": {"kafka": {"bootstrapServers": "k:9092"}, "train": {"topic": "susy-train"},
             "model": {"output": {"path": "/models/a", "volumeClaim": "models"}}},
}


def _with_status(status: dict[str, Any]) -> dict[str, Any]:
    return {**TRAINER_JOB, "status": status}


def test_a_folder_on_a_claim_is_ready_at_once() -> None:
    state = source_state(ModelSourceSpec(volume_claim="archive", path="ns/a/uid-a"), "ns", None)
    assert state.ready and state.folder == ClaimFolder("archive", "ns/a/uid-a")


def test_a_job_is_waited_for_until_it_exists_and_has_trained() -> None:
    source = ModelSourceSpec(job="a")
    missing = source_state(source, "ns", None)
    assert (missing.ready, missing.reason) == (False, "SourceJobNotFound")
    training = source_state(source, "ns", _with_status({"phase": "Training"}))
    assert (training.ready, training.reason) == (False, "SourceNotTrained")
    assert "it is Training" in training.message
    trained = source_state(source, "ns", _with_status(
        {"phase": "Evaluating", "trainer": {"job": "a-train", "succeeded": 1}}))
    assert trained.ready and trained.folder == ClaimFolder("models", "ns/a/uid-a")
    assert trained.folder.uri == "pvc://models/ns/a/uid-a"


def test_a_job_that_never_leaves_a_model_on_a_claim_is_an_invalid_source() -> None:
    scratch = {**TRAINER_JOB, "spec": {**TRAINER_JOB["spec"], "model": {}}}
    with pytest.raises(SpecError, match=r"spec.model.source.job: job a never leaves a model"):
        source_state(ModelSourceSpec(job="a"), "ns", scratch)
