"""Benchmarks of streamtrain against TensorFlow's Kafka tutorial (`make bench`; not tests)."""
