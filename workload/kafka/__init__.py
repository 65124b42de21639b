"""Every conversation with Kafka: connection and login, partition bounds, exact offset ranges, a
consumer-group member, a group's committed offsets, topics, the producer and dead letters.

librdkafka 2.x (confluent-kafka) by default; tensorflow-io's readers (`tfio`, `tfio_ranges`) for
`spec.kafka.client: tensorflow-io`. Nothing here imports TensorFlow but those two modules.
"""
