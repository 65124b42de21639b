"""Keep TensorFlow's and tensorflow-io's routine chatter out of the user's face.

TensorFlow prints start-up notices (CPU instructions, oneDNN, CUDA probing)
and tensorflow-io's Kafka readers log routine events (end of partition,
rebalance, poll timeouts) at ERROR level through TensorFlow's C++ logger.
`quiet()` must run before `import tensorflow`: the C++ logger reads
`TF_CPP_MIN_LOG_LEVEL` once at load time. Level 2 hides INFO and WARNING
lines; real failures still surface, because every Kafka or decoding error
that matters is raised as a Python exception by the code that hit it.
"""

from __future__ import annotations

import logging
import os
import warnings

CPP_LOG_LEVEL = "2"
"""TensorFlow C++ log level: 0 everything, 1 no INFO, 2 no WARNING, 3 no ERROR."""


def quiet() -> None:
    """Silence TensorFlow's start-up and routine logs (call before importing TensorFlow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", CPP_LOG_LEVEL)
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    warnings.filterwarnings("ignore", module="tensorflow_io")
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("kafka").setLevel(logging.ERROR)
