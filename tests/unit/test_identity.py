"""Whose saved state is this: the job uid and the digest of the settings that shape it."""

from __future__ import annotations

from typing import Any

from workload.identity import RunIdentity, spec_digest
from workload.spec import StreamingTrainingJobSpec, parse_spec

BASE: dict[str, Any] = {
    "kafka": {"bootstrapServers": "kafka:9092"},
    "train": {"topic": "t", "epochs": 3},
    "evaluate": {"topic": "e"},
    "model": {"output": {"path": "/models/a", "volumeClaim": "models"}},
}


def _spec(**changes: dict[str, Any]) -> StreamingTrainingJobSpec:
    document = {**BASE}
    for section, fields in changes.items():
        document[section] = {**document.get(section, {}), **fields}
    return parse_spec(document)


def test_digest_ignores_where_files_go_how_often_to_checkpoint_and_how_long_to_train() -> None:
    base = spec_digest(_spec())
    assert spec_digest(_spec(model={"output": {"path": "/models/b"}})) == base
    assert spec_digest(_spec(train={"checkpointEverySeconds": 5, "epochs": 9})) == base
    assert spec_digest(_spec(data={"deadLetterTopic": "dead"})) == base
    assert spec_digest(_spec(evaluate={"consumerGroup": "other"})) == base
    assert spec_digest(_spec(kafka={"bootstrapServers": "other:9092"})) == base


def test_digest_changes_with_the_data_and_the_model() -> None:
    base = spec_digest(_spec())
    changed = [_spec(train={"topic": "u"}), _spec(train={"batchSize": 32}),
               _spec(data={"features": 17}), _spec(model={"layers": [{"dense": 4}]}),
               _spec(model={"learningRate": 0.01})]
    digests = {spec_digest(spec) for spec in changed}
    assert base not in digests and len(digests) == len(changed)


def test_state_of_another_job_or_other_settings_is_named_as_such() -> None:
    mine = RunIdentity.of("a", _spec(), "uid-a")
    assert mine.mismatch("uid-a", mine.spec_digest) is None
    assert "job uid uid-b, this job is uid-a" in str(mine.mismatch("uid-b", mine.spec_digest))
    assert "other data, train or model settings" in str(mine.mismatch("uid-a", "0" * 64))
    assert "names no job" in str(mine.mismatch("", None))


def test_a_local_run_is_named_after_its_job() -> None:
    assert RunIdentity.of("susy", _spec(), None).job_uid == "local:susy"
