"""Support for failed transfers: case tickets, and replaying their events."""
