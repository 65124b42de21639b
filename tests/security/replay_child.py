"""Child process: build the Kafka connection from the environment as a pod does, then replay one
topic's offset range through tensorflow-io and print `{"records": N}`.

Run apart from the test process because tensorflow-io never frees its librdkafka handles,
which crash their process once their broker is stopped.
"""

from __future__ import annotations

import json
import sys

from workload import tflog
from workload.kafka.connection import connection_for
from workload.spec import KafkaSpec


def main(bootstrap_servers: str, topic: str) -> int:
    """Replay every record of `topic` once; print how many arrived."""
    tflog.quiet()
    from workload.kafka.bounds import partition_bounds, record_count
    from workload.kafka.tfio import replay_dataset

    connection = connection_for(KafkaSpec.model_validate({"bootstrapServers": bootstrap_servers}))
    offsets = partition_bounds(connection, topic)
    records = sum(int(keys.shape[0]) for keys, _ in replay_dataset(connection, topic, offsets))
    print(json.dumps({"records": records, "expected": record_count(offsets)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
