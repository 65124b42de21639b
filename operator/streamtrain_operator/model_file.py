"""The user's `.keras` file (`spec.model.file`) in the trainer's pod: a read-only mount.

The folder of the claim that holds the file is mounted read-only at
`MODEL_FILE_PATH` (a second mount of the job's output volume when it is the
same claim), and `MODEL_FILE_ENV` names the file there. Only training reads
it: it is the starting point of the model; evaluation and online learning
read the trained model. Pure: unit-tested without a cluster.
"""

from __future__ import annotations

import posixpath
from typing import Any

from workload.contract import MODEL_FILE_ENV, MODEL_FILE_PATH, Mode
from workload.spec import StreamingTrainingJobSpec

Manifest = dict[str, Any]

VOLUME = "model-file"
"""Name of the volume of the file's claim when it is not the output claim."""


def model_file_mounts(spec: StreamingTrainingJobSpec, mode: Mode, output_claim: str | None
                      ) -> tuple[list[Manifest], list[Manifest], list[Manifest]]:
    """Volumes, mounts and environment that put `spec.model.file` in a pod of `mode`."""
    file = spec.model.file
    if file is None or mode != "train":
        return [], [], []
    folder, name = posixpath.split(file.path)
    volumes: list[Manifest] = []
    volume = "model" if file.volume_claim == output_claim else VOLUME
    if volume == VOLUME:
        volumes.append({"name": VOLUME, "persistentVolumeClaim": {
            "claimName": file.volume_claim, "readOnly": True}})
    mount: Manifest = {"name": volume, "mountPath": MODEL_FILE_PATH, "readOnly": True}
    if folder:
        mount["subPath"] = folder
    return volumes, [mount], [{"name": MODEL_FILE_ENV, "value": f"{MODEL_FILE_PATH}/{name}"}]
