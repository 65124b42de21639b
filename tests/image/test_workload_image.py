"""The workload image: TensorFlow and the Kafka clients load (tensorflow-io is not there: it has an
image of its own), and a train + evaluate job runs against the real local broker as uid 65532
with a read-only root filesystem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from streamtrain_operator.builders import RUN_AS_USER

from localparts import containers, image
from tests.conftest import KafkaHandle
from tests.image.conftest import Image, source_modules
from workload.kafka import TENSORFLOW_IO_MODULES

IMPORTS = ("import importlib.util, tensorflow, kafka, confluent_kafka, pyarrow, workload.cli; "
           "print(tensorflow.__version__, confluent_kafka.libversion()[0], "
           "importlib.util.find_spec('tensorflow_io') is None)")
"""TensorFlow, both Kafka clients, Arrow and the `streamtrain` command; whether tensorflow-io is
absent."""


def test_it_should_load_tensorflow_and_the_kafka_clients(workload_image: Image) -> None:
    completed = workload_image.run("python3", "-c", IMPORTS)
    assert completed.returncode == 0, completed.stderr[-3000:]
    tensorflow, librdkafka, no_tensorflow_io = completed.stdout.split()
    assert tensorflow == image.pins("workload")["tensorflow"]
    assert librdkafka.startswith("2."), "librdkafka 2.x reads Kafka 4"
    assert no_tensorflow_io == "True", "tensorflow-io is the workload-tfio image's"


def test_it_should_hold_every_workload_module_at_the_pinned_versions(
    workload_image: Image, repo_root: Path,
) -> None:
    pinned = image.pins("workload")
    found = workload_image.probe("workload", sorted(pinned), left_out=TENSORFLOW_IO_MODULES)
    assert found["modules"] == source_modules(repo_root / "workload", "workload")
    assert found["versions"] == pinned


def test_it_should_run_a_train_and_evaluate_job_read_only_as_65532(
    workload_image: Image, kafka: KafkaHandle, tmp_path: Path,
) -> None:
    train_topic, test_topic = kafka.create_topic("img-train", 1), kafka.create_topic("img-test", 2)
    produced = subprocess.run(
        [sys.executable, "-m", "workload.cli", "produce", "--bootstrap-servers",
         kafka.bootstrap_servers, "--rows", "2000", "--train-topic", train_topic,
         "--test-topic", test_topic, "--quiet"], capture_output=True, text=True, timeout=300,
        check=False)
    assert produced.returncode == 0, produced.stderr
    job, out = tmp_path / "job", tmp_path / "out"
    job.mkdir()
    out.mkdir()
    os.chown(out, RUN_AS_USER, RUN_AS_USER)  # as a kubelet hands a volume to the pod's fsGroup
    (job / "job.yaml").write_text(f"""\
apiVersion: streamtrain.dev/v1alpha1
kind: StreamingTrainingJob
metadata: {{name: image}}
spec:
  kafka: {{bootstrapServers: "{kafka.bootstrap_servers}"}}
  train: {{topic: {train_topic}, epochs: 2}}
  evaluate: {{topic: {test_topic}, consumerGroup: image-eval, streamTimeoutMs: 0}}
  model:
    layers: [{{dense: 16}}]
    output: {{path: /models/image, volumeClaim: models}}
""")
    completed = workload_image.run(
        "sh", "-c", "id -u && ! touch /opt/x 2>/dev/null && "
        "streamtrain run /job/job.yaml --output-dir /out --quiet",
        user=f"{RUN_AS_USER}:{RUN_AS_USER}", mounts=[containers.Mount(job, "/job", read_only=True),
                             containers.Mount(out, "/out")])
    assert completed.stdout.splitlines()[:1] == [str(RUN_AS_USER)]
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    document = json.loads((out / "results.json").read_text())
    assert document["ok"] is True
    assert [phase["mode"] for phase in document["phases"]] == ["train", "evaluate"]
    assert document["phases"][1]["metrics"]["recordsEvaluated"] == 800
    assert (out / "model.keras").stat().st_uid == RUN_AS_USER


FIRST_RECORD = """
import sys
import workload.modes.train  # what a trainer pod loads before it reads: TensorFlow, Keras
from workload.kafka.connection import KafkaConnection
from workload.kafka.ranges import read_ranges
batch = next(read_ranges(KafkaConnection(sys.argv[1]), sys.argv[2], {0: (0, 1)}))
print(batch.values[0].decode())
"""
"""Load what a trainer loads, then read a topic's first record and print its value."""


def test_it_should_read_a_first_record_after_loading_what_a_trainer_loads(
    workload_image: Image, kafka: KafkaHandle,
) -> None:
    topic = kafka.create_topic("img-first")
    producer = kafka.producer()
    producer.send(topic, b"first-record", partition=0).get(timeout=30)
    producer.close()
    started = time.monotonic()
    in_image = workload_image.run("python3", "-c", FIRST_RECORD, kafka.bootstrap_servers, topic)
    image_s = time.monotonic() - started
    assert in_image.returncode == 0, in_image.stderr[-3000:]
    assert in_image.stdout.splitlines()[-1] == "first-record"
    started = time.monotonic()
    here = subprocess.run([sys.executable, "-c", FIRST_RECORD, kafka.bootstrap_servers, topic],
                          capture_output=True, text=True, timeout=300, check=False)
    here_s = time.monotonic() - started
    assert here.stdout.splitlines()[-1:] == ["first-record"], here.stderr[-3000:]
    print(f"\nworkload image: first record {image_s:.1f} s after podman run "
          f"({here_s:.1f} s the same command in this environment)")
