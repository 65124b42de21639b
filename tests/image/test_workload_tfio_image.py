"""The workload-tfio image (`make image-tfio`): the tensorflow-io client's pin set, TensorFlow 2.16
with tensorflow-io 0.37.1 whose native library loads, every workload module importing, and a job
with `client: tensorflow-io` passing its start check there."""

from __future__ import annotations

from pathlib import Path

from localparts import image
from tests.image.conftest import Image, source_modules

LOADS = ("from workload.kafka.probe import tensorflow_io_missing; import tensorflow; "
         "print(tensorflow.__version__, tensorflow_io_missing() is None)")
"""TensorFlow's version, and whether the start check of a `client: tensorflow-io` job passes."""


def test_it_should_load_tensorflow_io_beside_its_tensorflow(workload_tfio_image: Image) -> None:
    completed = workload_tfio_image.run("python3", "-c", LOADS)
    assert completed.returncode == 0, completed.stderr[-3000:]
    tensorflow, client_loads = completed.stdout.split()[-2:]
    assert tensorflow == image.pins("workload-tfio")["tensorflow"] == "2.16.2"
    assert client_loads == "True"


def test_it_should_hold_every_workload_module_at_the_pinned_versions(
    workload_tfio_image: Image, repo_root: Path,
) -> None:
    pinned = image.pins("workload-tfio")
    found = workload_tfio_image.probe("workload", sorted(pinned))
    assert found["modules"] == source_modules(repo_root / "workload", "workload")
    assert found["versions"] == pinned
