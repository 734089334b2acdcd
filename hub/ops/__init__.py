"""Operations: what the people who run the hub watch and use. Prometheus metrics and the
worker's health views, the consumer group's lag exporter, logging that keeps personal data out,
the worker's web server, and backup, restore and recovery of the register."""
