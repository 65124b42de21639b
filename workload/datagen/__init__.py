"""Data to try the workload on, apart from the ingest path: synthetic SUSY-like rows and other
generated families with their Bayes-optimal accuracy, the real SUSY loader, rows as Kafka
records, and the train/test split `streamtrain produce` writes."""
