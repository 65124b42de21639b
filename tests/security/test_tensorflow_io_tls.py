"""TLS listeners on Kafka 3.9, as Strimzi serves `tls: true`: the cluster CA Secret plus a tls
KafkaUser's certificate (mutual TLS), or plus a SCRAM password (SASL_SSL), let tensorflow-io's
librdkafka 1.5 replay a topic, and no password reaches its output. Run in the tensorflow-io set's
environment (`pytest --tensorflow-io`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.security.conftest import TRAIN_ROWS, TlsKafka
from tests.security.test_kafka_tls import pod_environment, servers

CHILD_TIMEOUT_S = 120.0


def test_tls_user_secrets_replay_through_tensorflow_io_on_kafka_3(
        tls_kafka3: TlsKafka, tmp_path: Path) -> None:
    children = {}
    for kind in ("mtls", "scram"):
        env = {**os.environ, **pod_environment(tls_kafka3, kind, tmp_path / kind,
                                               tls_kafka3.password)}
        children[kind] = subprocess.Popen(
            [sys.executable, "-m", "tests.security.replay_child", servers(tls_kafka3, kind),
             tls_kafka3.topic], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
    try:
        for kind, child in children.items():
            stdout, stderr = child.communicate(timeout=CHILD_TIMEOUT_S)
            assert child.returncode == 0, f"{kind}: {stderr[-3000:]}"
            counted = json.loads(stdout.strip().splitlines()[-1])
            assert counted == {"records": TRAIN_ROWS, "expected": TRAIN_ROWS}, kind
            assert tls_kafka3.password not in stdout + stderr
    finally:  # a child that hangs must not outlive the test
        for child in children.values():
            child.kill()
            child.wait()
