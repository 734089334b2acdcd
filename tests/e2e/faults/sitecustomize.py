"""Faults for the end-to-end tests, put in a worker's path with PYTHONPATH (Python imports
`sitecustomize` at start); each acts only when its variables are set.

- NIR_TEST_CRASH_MARKER (the crash guard's test): the worker ends at once, as a segmentation
  fault or an out-of-memory kill would end it, whenever it begins to decode a registration whose
  bytes hold the marker.
- NIR_TEST_PAUSE_MARKER (the recovery test): a batch of registrations one of whose messages holds
  the marker waits, once the crash guard has marked it and before it decides anything, until the
  file NIR_TEST_GO_FILE exists (a minute at most); it first writes where that message was read
  from ("topic partition offset") to NIR_TEST_PAUSED_FILE. So a test knows a batch is in flight,
  and for how long. The event loop keeps running (heartbeats go on); once the go file exists the
  marker pauses nothing."""

import os

_marker = os.environ.get("NIR_TEST_CRASH_MARKER", "").encode()

if _marker:
    import hub.pipeline.checkpoint as _checkpoint

    _decode = _checkpoint.decode_registration

    def _crashing(catalog, data):  # type: ignore[no-untyped-def]
        if data and _marker in data:
            os._exit(134)
        return _decode(catalog, data)

    _checkpoint.decode_registration = _crashing

_pause = os.environ.get("NIR_TEST_PAUSE_MARKER", "").encode()

if _pause:
    import asyncio
    import pathlib

    import hub.pipeline.registrations as _pausing_registrations

    _paused_file = pathlib.Path(os.environ["NIR_TEST_PAUSED_FILE"])
    _go_file = pathlib.Path(os.environ["NIR_TEST_GO_FILE"])
    _process_batch = _pausing_registrations.RegistrationFlow.process_batch

    async def _pausing(self, messages):  # type: ignore[no-untyped-def]
        marked = [m for m in messages if m.value and _pause in m.value]
        if marked and not _go_file.exists():
            origin = marked[0].origin
            _paused_file.write_text(f"{origin.topic} {origin.partition} {origin.offset}\n")
            for _ in range(600):
                if _go_file.exists():
                    break
                await asyncio.sleep(0.1)
        return await _process_batch(self, messages)

    _pausing_registrations.RegistrationFlow.process_batch = _pausing
