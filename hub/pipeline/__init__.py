"""The processing stages as plain functions: decode → validate → deduplicate and write → receipt
or dead letter. Each stage is testable without Kafka; the agents only wire them to topics."""
