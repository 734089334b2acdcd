"""The register: SQLAlchemy models, the unit of work, and the operations on them."""
