"""Serve mode on the real broker: one prediction per good input record, read_committed."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from tests.conftest import KafkaHandle
from tests.integration.modes_support import predict, save_tiny_model
from tests.integration.serve_support import (
    answered_twice,
    produce_with_headers,
    read_committed,
    read_predictions,
    serve_spec,
)
from workload.artifacts import Artifacts
from workload.data.decode import make_decoder
from workload.datagen.records import corrupt, encode
from workload.datagen.synthetic import generate
from workload.kafka.connection import KafkaConnection
from workload.kafka.dead_letter import REASON_HEADER
from workload.modes.serve import run_serve
from workload.modes.serving_model import version_of
from workload.spec import DataSpec


def test_each_good_record_gets_one_prediction_with_its_key_headers_and_place(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    source = kafka.create_topic("serve-in", partitions=2)
    output, dead = f"{source}-out", f"{source}-bad"
    data = generate(3000, seed=41)
    messages, made = corrupt(encode(data), 0.02, seed=41)
    produce_with_headers(kafka.bootstrap_servers, source, messages, partitions=2)
    artifacts = Artifacts(tmp_path).prepare()
    save_tiny_model(artifacts.keras_model, data=data)
    spec = serve_spec(kafka.bootstrap_servers, tmp_path, source, output, batchSize=500,
                      data={"deadLetterTopic": dead})

    report = run_serve("serve", spec, KafkaConnection(kafka.bootstrap_servers), artifacts,
                       progress=False)

    assert report.ok, report.message
    # A label is not needed to serve: a record whose only fault is its key is answered.
    set_aside = {reason: n for reason, n in made.items() if n and reason != "bad_key"}
    good = 3000 - sum(set_aside.values())
    assert report.metrics.records_served == good
    assert report.metrics.bad_records_by_reason == set_aside
    predictions = read_predictions(kafka.bootstrap_servers, output)
    assert len(predictions) == good and not answered_twice(predictions)
    by_source = {prediction.source: prediction for prediction in predictions}
    version = version_of("trained", artifacts.keras_model)
    features, places = [], []
    for index, (key, value) in enumerate(messages):
        place = (index % 2, index // 2)
        decoded = make_decoder(DataSpec())([b"0"], [value])
        if not decoded.good[0]:
            assert place not in by_source
            continue
        answer = by_source[place]
        assert answer.key == key and answer.headers == (("seq", str(index).encode()),)
        assert answer.partition == place[0] and answer.value["modelVersion"] == version
        features.append(decoded.features[0])
        places.append(place)
    expected = predict(artifacts.keras_model, np.stack(features))
    served = np.array([by_source[place].value["prediction"]["probabilities"]["1"]
                       for place in places])
    np.testing.assert_allclose(served, expected, atol=1e-5)
    classes = [by_source[place].value["prediction"]["class"] for place in places]
    assert classes == (expected > 0.5).astype(int).tolist()
    letters = read_committed(kafka.bootstrap_servers, dead)
    reasons = [dict(message.headers())[REASON_HEADER].decode() for message in letters]
    assert sorted(reasons) == sorted(r for r, n in set_aside.items() for _ in range(n))


def test_serving_stops_on_request_with_what_it_answered_committed(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    source = kafka.create_topic("serve-stop", partitions=1)
    output = f"{source}-out"
    data = generate(500, seed=42)
    produce_with_headers(kafka.bootstrap_servers, source, list(encode(data)), partitions=1)
    artifacts = Artifacts(tmp_path).prepare()
    save_tiny_model(artifacts.keras_model, data=data)
    spec = serve_spec(kafka.bootstrap_servers, tmp_path, source, output, streamTimeoutMs=-1,
                      maxLatencyMs=50)
    stop = threading.Event()
    reports = []
    server = threading.Thread(target=lambda: reports.append(run_serve(
        "serve", spec, KafkaConnection(kafka.bootstrap_servers), artifacts, progress=False,
        stop_event=stop)))
    server.start()
    try:
        # Everything answered is visible to a read_committed reader while it serves.
        predictions = read_predictions(kafka.bootstrap_servers, output, settle_s=0.5)
        while len(predictions) < 500:
            predictions = read_predictions(kafka.bootstrap_servers, output)
    finally:
        stop.set()
        server.join(60)
    assert not server.is_alive() and reports[0].ok, reports
    assert reports[0].metrics.records_served == 500
    assert len(predictions) == 500 and not answered_twice(predictions)
