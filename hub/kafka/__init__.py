"""Kafka plumbing: the connection (TLS, SCRAM or Maskinporten tokens), the broker admin reads
and writes the hub needs, its topics, the principals and their ACLs, and the transport that
changes what Faust does with aiokafka (record batches, idempotent batched sends)."""
