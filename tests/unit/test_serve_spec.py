"""The serving section of the spec: defaults, the rules it obeys, what may change while it runs."""

from __future__ import annotations

from typing import Any

import pytest

from workload.spec import SpecError, parse_spec

KAFKA = {"bootstrapServers": "127.0.0.1:9092"}
SERVE = {"inputTopic": "susy-test", "outputTopic": "susy-predictions"}


def test_serving_defaults_commit_every_20000_records_or_50_ms_and_serve_until_stopped() -> None:
    spec = parse_spec({"kafka": KAFKA, "train": {"topic": "t"}, "serve": SERVE})
    assert spec.serve is not None
    assert (spec.serve.batch_size, spec.serve.max_latency_ms, spec.serve.stream_timeout_ms,
            spec.serve.replicas, spec.serve.consumer_group) == (20000, 50, -1, 1, "cgserve")
    # Serving runs beside the phases, not after them.
    assert spec.phases == ["train"] and spec.modes == ["train", "serve"]


@pytest.mark.parametrize(
    ("document", "in_cluster", "expected"),
    [
        ({"serve": {**SERVE, "outputTopic": "susy-test"}}, False,
         "spec.serve.outputTopic: outputTopic must differ from inputTopic"),
        ({"serve": {**SERVE, "maxLatencyMs": 0}}, False, "spec.serve.maxLatencyMs"),
        ({"serve": {**SERVE, "maxLatencyMs": 20_000}}, False, "spec.serve.maxLatencyMs"),
        ({"serve": {**SERVE, "replicas": 0}}, False, "spec.serve.replicas"),
        ({"serve": {"inputTopic": "a"}}, False, "spec.serve.outputTopic: Field required"),
        ({"serve": SERVE, "data": {"deadLetterTopic": "susy-predictions"}}, False,
         "spec.data.deadLetterTopic: data.deadLetterTopic must differ"),
        ({"serve": {**SERVE, "streamTimeoutMs": 5000}, "train": {"topic": "t"},
          "model": {"output": {"volumeClaim": "c"}}}, True,
         "spec.serve.streamTimeoutMs: serving runs as a Deployment"),
        ({"serve": SERVE}, True, "spec.serve: serve needs a model"),
        ({"serve": SERVE, "train": {"topic": "t"}}, True,
         "spec.model.output.volumeClaim: required when evaluate or online or serve run after"),
    ],
)
def test_an_invalid_serving_section_is_refused_naming_the_field(
        document: dict[str, Any], in_cluster: bool, expected: str) -> None:
    with pytest.raises(SpecError, match=expected.replace(".", r"\.")):
        parse_spec({"kafka": KAFKA, **document}, in_cluster=in_cluster)


def test_a_local_run_may_serve_until_idle_from_a_model_in_its_folder() -> None:
    spec = parse_spec({"kafka": KAFKA, "serve": {**SERVE, "streamTimeoutMs": 5000}})
    assert spec.serve is not None and spec.serve.stream_timeout_ms == 5000
