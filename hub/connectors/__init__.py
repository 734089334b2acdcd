"""Connectors at the hub's edges: the fagsystem producer API (and, later, Folkeregisteret's feed)."""
