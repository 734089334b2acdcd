"""The register's domain knowledge that needs no I/O: identifiers, municipalities, dates."""
