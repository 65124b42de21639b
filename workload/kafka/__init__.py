"""Every conversation with Kafka: connection and login, partition bounds, exact offset ranges, a
consumer-group member, a group's committed offsets, topics, the producer and dead letters.

librdkafka 2.x (confluent-kafka) by default; tensorflow-io's readers (`tfio`, `tfio_ranges`) for
`spec.kafka.client: tensorflow-io`. Nothing here imports TensorFlow but those two modules, and they
import only where the tensorflow-io set is installed (the `workload-tfio` extra and image).
"""

TENSORFLOW_IO_MODULES = ("workload.kafka.tfio", "workload.kafka.tfio_ranges")
"""The modules that import tensorflow_io: absent from the default install (TensorFlow 2.21), they
are imported only for `client: tensorflow-io`, after `probe.tensorflow_io_missing` said yes."""
