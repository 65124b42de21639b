"""Keep TensorFlow's, tensorflow-io's and librdkafka's routine chatter out of the user's face.

TensorFlow prints start-up notices (CPU instructions, oneDNN, CUDA factory
registration) and tensorflow-io's Kafka readers log routine events (end of
partition, rebalance, poll timeouts) at ERROR level through TensorFlow's C++
logger, straight to file descriptor 2. Two layers:

- `quiet()` (call before `import tensorflow`: the C++ logger reads
  `TF_CPP_MIN_LOG_LEVEL` once) hides INFO and WARNING lines and Python-side
  warnings; ERROR lines still pass.
- `filter_routine_stderr()` (for the command line, not for tests) routes
  descriptor 2 through a small child process that drops only lines matching
  `ROUTINE_LINES` and passes everything else through unchanged, so a real
  error, a traceback or a crash report is never hidden. Being a separate
  process, it still forwards what a dying process wrote last; it exits when
  the process it serves has exited.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import warnings

CPP_LOG_LEVEL = "2"
"""TensorFlow C++ log level: 0 everything, 1 no INFO, 2 no WARNING, 3 no ERROR."""

ROUTINE_LINES = re.compile(
    r"EOF Message: Broker: No more messages"
    r"|Unable to register cu(?:FFT|DNN|BLAS) factory"
    r"|Kafka (?:configuration|stream starts|tail):"
    r"|EVENT_LOG: \d-(?:REBALANCE|CGRPOP|ASSIGN|OFFSET|FETCH)"
    r"|Local: Timed out|Local: Broker transport failure"
    r"|\] REBALANCE: |Retrieved committed offsets with status code"
    r"|Subscribing to the kafka topic|Subscribed to the kafka topic"
    r"|TF-TRT Warning|oneDNN custom operations|This TensorFlow binary is optimized"
    r"|Could not find cuda drivers on your machine|failed call to cuInit"
    r"|All log messages before absl::InitializeLog\(\) is called are written to STDERR"
)
"""Lines logged at ERROR level (or before the log level is read) for routine events: end of a
partition, polls that found nothing yet, group rebalances, CUDA probing on a machine without a
GPU (TensorFlow 2.21 says so at every start, before `TF_CPP_MIN_LOG_LEVEL` applies)."""

_FILTER_SOURCE = """
import re, signal, sys
for name in ("SIGINT", "SIGTERM", "SIGHUP"):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
routine = re.compile(sys.argv[1].encode())
source, sink = sys.stdin.buffer, sys.stdout.buffer
for line in iter(source.readline, b""):
    if not routine.search(line):
        sink.write(line)
        sink.flush()
"""


def quiet() -> None:
    """Silence TensorFlow's start-up and routine logs (call before importing TensorFlow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", CPP_LOG_LEVEL)
    warnings.filterwarnings("ignore", module="tensorflow_io")
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    # librdkafka warns of what it retries by itself (e.g. a producer id while a new broker's
    # transaction coordinator loads); what fails a phase is reported in one sentence anyway.
    logging.getLogger("librdkafka").setLevel(logging.ERROR)


def filter_routine_stderr() -> subprocess.Popen[bytes]:
    """Drop routine ERROR lines from descriptor 2 for the rest of the process; return the filter."""
    sys.stderr.flush()
    original = os.dup(2)
    child = subprocess.Popen(
        [sys.executable, "-c", _FILTER_SOURCE, ROUTINE_LINES.pattern],
        stdin=subprocess.PIPE, stdout=original, stderr=original, close_fds=True,
    )
    assert child.stdin is not None
    os.dup2(child.stdin.fileno(), 2)
    child.stdin.close()
    os.close(original)
    return child
