"""NIR integration hub: carries registrations from municipal fagsystems to the national introduction register."""
