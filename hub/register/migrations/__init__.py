"""Alembic migrations of the register (`hub db upgrade`)."""
