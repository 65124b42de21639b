"""A job with `spec.kafka.client: tensorflow-io` where that client is missing (the default install:
TensorFlow 2.21, no tensorflow-io) fails at start, in one sentence naming the image and the extra
that hold it, before it contacts Kafka. The client's own environment runs its tests apart
(`tests/integration/test_tensorflow_io_clients.py`, `pytest --tensorflow-io`)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from localparts import image
from workload.contract import JOB_NAME_ENV, JOB_SPEC_ENV, PERMANENT, TERMINATION_LOG_ENV
from workload.kafka import probe


def test_the_default_environment_has_no_tensorflow_io() -> None:
    assert importlib.util.find_spec("tensorflow_io") is None


def test_a_tensorflow_io_pod_without_the_client_fails_at_start_naming_image_and_extra(
        tmp_path: Path) -> None:
    spec = {"kafka": {"bootstrapServers": "127.0.0.1:9", "client": "tensorflow-io"},
            "train": {"topic": "susy-train"}, "model": {"output": {"path": str(tmp_path)}}}
    log = tmp_path / "termination-log"
    env = {**os.environ, JOB_SPEC_ENV: json.dumps(spec), JOB_NAME_ENV: "tfio",
           TERMINATION_LOG_ENV: str(log)}
    result = subprocess.run([sys.executable, "-m", "workload.cli", "run-mode", "train"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == PERMANENT["KafkaClientUnsupported"].exit_code, result.stderr[-2000:]
    report = json.loads(log.read_text())
    # Refused before any probe: no broker listens at the address, so a probe would have said
    # KafkaUnreachable.
    assert report["reason"] == "KafkaClientUnsupported"
    message = report["message"]
    assert message.count(": ") == 1 and message.count(". ") == 0, "one sentence"
    assert "this environment does not have it" in message
    assert image.image_name("workload-tfio") in message
    assert "streamtrain[workload-tfio]" in message
    assert "127.0.0.1:9" not in message, "decided before Kafka is asked"


def test_the_named_image_and_extra_are_what_the_build_provides(repo_root: Path) -> None:
    assert "workload-tfio" in image.TARGETS
    with (repo_root / "pyproject.toml").open("rb") as source:
        extras = tomllib.load(source)["project"]["optional-dependencies"]
    pins = extras[probe.TENSORFLOW_IO_EXTRA]
    assert "tensorflow-io==0.37.1" in pins and "tensorflow==2.16.2" in pins
    assert image.image_name("workload-tfio").startswith(probe.TENSORFLOW_IO_IMAGE + ":")


def test_a_tensorflow_io_that_fails_to_load_is_named_with_its_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """tensorflow-io installed on top of a newer TensorFlow: the package imports, its native
    library fails on first use (an undefined symbol), which the check forces."""

    class Ops(ModuleType):
        @property
        def core_ops(self) -> object:
            raise RuntimeError("libtensorflow_io.so: undefined symbol: _ZN10tensorflow4data11"
                               "DatasetBase8FinalizeEv\nmore lines")

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(importlib, "import_module", lambda name: Ops(name))
    message = probe.tensorflow_io_missing()
    assert message is not None
    assert "it does not load here (libtensorflow_io.so: undefined symbol" in message
    assert "more lines" not in message
    assert probe.TENSORFLOW_IO_IMAGE in message
