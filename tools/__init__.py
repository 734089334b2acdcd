"""Developer and operations scripts (run as `python tools/NAME.py`; see each docstring)."""
