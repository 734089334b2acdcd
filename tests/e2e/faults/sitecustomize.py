"""A fault for the crash guard's test, put in a worker's path with PYTHONPATH: the worker ends at
once, as a segmentation fault or an out-of-memory kill would end it, whenever it begins to decode
a registration whose bytes hold NIR_TEST_CRASH_MARKER. Python imports `sitecustomize` at start."""

import os

_marker = os.environ.get("NIR_TEST_CRASH_MARKER", "").encode()

if _marker:
    import hub.pipeline.registrations as _registrations

    _decode = _registrations.decode_registration

    def _crashing(catalog, data):  # type: ignore[no-untyped-def]
        if data and _marker in data:
            os._exit(134)
        return _decode(catalog, data)

    _registrations.decode_registration = _crashing
