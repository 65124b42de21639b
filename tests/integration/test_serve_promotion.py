"""Online learning beside serving: a better challenger is promoted and the replicas swap to it
between transactions, still answering each record exactly once."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from tests.conftest import KafkaHandle
from tests.faults import processes
from tests.faults.serve_faults import SERVE_CHILD, committed_or_none
from tests.integration.modes_support import fill_topic, save_tiny_model
from tests.integration.serve_support import (
    answered_twice,
    produce_with_headers,
    read_predictions,
    serve_spec,
)
from workload.artifacts import Artifacts, file_digest
from workload.contract import PROGRESS_TOKEN_ENV, PROGRESS_URL_ENV
from workload.datagen.records import encode
from workload.datagen.synthetic import generate
from workload.kafka.bounds import end_offsets
from workload.kafka.connection import KafkaConnection
from workload.model.litert import matching_litert
from workload.modes.online import run_online
from workload.modes.serving_model import POINTER, version_of
from workload.progress import channel

SERVED_ROWS = 4000


def test_a_challenger_that_beats_the_served_model_is_promoted_and_served_from_then_on(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    bootstrap = kafka.bootstrap_servers
    learn = kafka.create_topic("promote-learn", partitions=1)
    source = kafka.create_topic("promote-in", partitions=2)
    output, group = f"{source}-out", f"{source}-serve"
    data, _, _ = fill_topic(bootstrap, learn, 24_000, seed=51, partitions=1)
    artifacts = Artifacts(tmp_path / "out").prepare()
    save_tiny_model(artifacts.keras_model, data=data)  # untrained: about a coin toss
    trained = version_of("trained", artifacts.keras_model)
    spec = serve_spec(bootstrap, artifacts.root, source, output, consumerGroup=group,
                      streamTimeoutMs=-1, maxLatencyMs=50, batchSize=200,
                      promotion={"window": 2000},
                      online={"topic": learn, "consumerGroup": learn, "streamTimeoutMs": 3000,
                              "batchSize": 64, "exportEveryRecords": 4000,
                              "exportEverySeconds": 0})
    served = list(encode(generate(SERVED_ROWS, seed=52)))
    produce_with_headers(bootstrap, source, served[:SERVED_ROWS // 2], partitions=2)
    child = processes.start(processes.command(
        SERVE_CHILD, processes.spec_file(spec, tmp_path / "spec.json"), artifacts.root, "0"),
        tmp_path / "serve.log")

    def all_served(deadline_s: float = 120) -> None:
        ends = end_offsets(KafkaConnection(bootstrap), source)
        deadline = time.monotonic() + deadline_s
        while committed_or_none(bootstrap, group, source) != ends:
            assert time.monotonic() < deadline and child.poll() is None, (
                (tmp_path / "serve.log").read_text()[-3000:])
            time.sleep(0.2)

    try:
        all_served()  # the first half by the trained model
        token = tmp_path / "token"
        token.write_text("t")
        posts: list[dict[str, Any]] = []
        with channel("online", {PROGRESS_URL_ENV: "http://operator/progress/ns/promote",
                                PROGRESS_TOKEN_ENV: str(token)},
                     send=lambda url, bearer, body: posts.append(json.loads(body))):
            report = run_online("promote", spec, KafkaConnection(bootstrap), artifacts,
                                progress=False)
        assert report.ok, report.message
        produce_with_headers(bootstrap, source, served[SERVED_ROWS // 2:], partitions=2,
                             start=SERVED_ROWS // 2)
        all_served()
    finally:
        child.send_signal(signal.SIGTERM)
        code = child.wait(60)
    assert code == 0

    state = json.loads((artifacts.online / "state.json").read_text())
    assert state["promotions"] >= 1, state["recentDecisions"]
    # The learner's last post, made before it returns (in a pod: before its phase ends), carries
    # its last decision, that of its final export included.
    last = posts[-1]["promotions"][-1]
    assert [last[key] for key in ("decisions", "promoted", "version")] == [
        state["promotionDecisions"], *(state["recentDecisions"][-1][key]
                                       for key in ("promoted", "version"))]
    pointer = json.loads((artifacts.serving / POINTER).read_text())
    assert pointer["version"].startswith("online-")
    assert pointer["version"] == state["recentDecisions"][-1]["version"]  # the last decision's
    promoted = artifacts.serving / pointer["model"]
    assert promoted.is_file()
    # the promoted model got its LiteRT scorer too: replicas keep serving without TensorFlow
    scorer, made = matching_litert(promoted, file_digest(promoted))
    assert scorer is not None and scorer.is_file(), made
    predictions = read_predictions(bootstrap, output)
    assert len(predictions) == SERVED_ROWS and not answered_twice(predictions)
    for partition in (0, 1):
        versions = [p.value["modelVersion"] for p in sorted(
            (p for p in predictions if p.source[0] == partition), key=lambda p: p.source[1])]
        half = SERVED_ROWS // 4  # records of this partition in each half
        assert set(versions[:half]) == {trained}
        assert set(versions[half:]) == {pointer["version"]}  # swapped between transactions
