"""`hub gateway`: the HTTPS door for fagsystems that do not speak Kafka.

A fagsystem calls it with a Maskinporten access token (`tokens`), posts events in the contract's
JSON shape or as Avro single-object bytes (`intake`), and reads its receipts by cursor
(`receipts`). The gateway sends each accepted event to the registrations topic of the source the
token names, as its own principal, and answers only once the broker has confirmed it; the worker
does the rest exactly as for an event sent over Kafka. `server` wires it into an aiohttp app.
"""
