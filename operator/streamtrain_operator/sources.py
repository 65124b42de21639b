"""Resolve `model.source`: where the model a job evaluates (or starts online from) lives.

`source.path` names a folder on a claim directly. `source.job` names another
StreamingTrainingJob of the namespace; its model is in that job's own folder
on its output claim (`builders.job_folder`), ready once its trainer has
succeeded. Until then the job waits with `ModelSourceReady=False`, which says
why. A source job that can never leave a model there (it does not train, or
keeps its model on a scratch volume) makes the spec invalid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from streamtrain_operator.builders import ClaimFolder, job_folder
from streamtrain_operator.planner import SourceState
from workload.spec import (
    ModelSourceSpec,
    SpecError,
    StreamingTrainingJobSpec,
    parse_spec,
)
from workload.status import StreamingTrainingJobStatus


def source_state(source: ModelSourceSpec, namespace: str,
                 found: Mapping[str, Any] | None) -> SourceState:
    """The source's readiness, from the named job's resource (`found`, `None` if absent)."""
    if source.path is not None and source.volume_claim is not None:
        folder = ClaimFolder(source.volume_claim, source.path)
        return SourceState(True, "Resolved", folder.uri, folder)
    name = source.job
    if found is None:
        return SourceState(False, "SourceJobNotFound",
                           f"waiting for StreamingTrainingJob {name} in namespace {namespace}")
    field = "spec.model.source.job"
    try:
        other = parse_spec(found.get("spec") or {})
    except SpecError as error:
        raise SpecError(f"{field}: job {name} has an invalid spec ({error})") from None
    if other.train is None or other.model.output.volume_claim is None:
        raise SpecError(f"{field}: job {name} never leaves a model to read (it needs train "
                        "and model.output.volumeClaim)")
    status = StreamingTrainingJobStatus.model_validate(dict(found.get("status") or {}))
    trained = status.trainer is not None and status.trainer.succeeded > 0
    if not trained:
        return SourceState(False, "SourceNotTrained",
                           f"waiting for job {name} to finish training (it is {status.phase})")
    uid = str(found["metadata"]["uid"])
    folder = ClaimFolder(other.model.output.volume_claim, job_folder(namespace, name or "", uid))
    return SourceState(True, "Resolved", f"the model of job {name} in {folder.uri}", folder)


def resolve(namespace: str, spec: StreamingTrainingJobSpec,
            job_named: Callable[[str], Mapping[str, Any] | None]) -> SourceState | None:
    """Where `spec.model.source` is (`None` when the job names none), with `job_named` finding
    a job of the namespace (as the watches hold it); a `SpecError` when the named job can never
    provide a model."""
    source = spec.model.source
    if source is None:
        return None
    found = job_named(source.job) if source.job is not None else None
    return source_state(source, namespace, found)
