"""The Avro contract (`*.avsc`, one file per schema version) and the codec that reads and writes it."""
