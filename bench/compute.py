"""The compute baseline: one epoch of the tutorial's model on in-memory arrays, in a clean process.

`python -m bench.compute ROWS TOTAL SEED` prints `{"compute_epoch_s": ...}`: plain
`model.fit` of the compiled model (its training step traced first) over the
same synthetic training rows the benchmark writes to Kafka (the first ROWS
of TOTAL generated with SEED), batch 64, no callbacks.
It runs in a process of its own so that nothing else (readers, their
threads, memory already allocated) slows it: the limit a training epoch is
held against must be the honest one.
"""

from __future__ import annotations

import json
import sys
import time

from workload import tflog

tflog.quiet()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from workload.model.build import build_model  # noqa: E402
from workload.spec import DataSpec, ModelSpec  # noqa: E402

BATCH = 64
"""The tutorial's batch size and shuffle buffer."""

N_FEATURES = 18


def tutorial_model() -> keras.Model:
    """The tutorial's MLP (its loss bug fixed), compiled, with its training step traced."""
    model = build_model(ModelSpec.model_validate({"preprocessing": "none"}),
                        DataSpec(features=N_FEATURES))
    warm = tf.data.Dataset.from_tensor_slices(
        (np.zeros((2 * BATCH, N_FEATURES), np.float32), np.zeros(2 * BATCH, np.float32)))
    model.fit(warm.batch(BATCH), epochs=1, verbose=0)
    return model


def compute_epoch_s(rows: int, total: int, seed: int) -> float:
    """Seconds of one `fit` epoch over the first `rows` of `total` synthetic rows of `seed`."""
    from workload.datagen.synthetic import generate
    from workload.datagen.table import split

    data, _ = split(generate(total, seed=seed), rows)
    model = tutorial_model()
    features, labels = data.features.astype(np.float32), data.labels.astype(np.float32)
    started = time.perf_counter()
    model.fit(features, labels, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
    return time.perf_counter() - started


if __name__ == "__main__":
    print(json.dumps({"compute_epoch_s": compute_epoch_s(*map(int, sys.argv[1:4]))}))
