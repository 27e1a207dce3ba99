"""The HTTP API: images posted by integrations written for the cloud plate readers.

``POST /v1/plate-reader/`` answers in the shape of Plate Recognizer's Snapshot API,
``POST /v2/recognize`` in the shape of OpenALPR's ``alpr -j``; ``GET /health`` and
``GET /metrics`` (Prometheus text) show the appliance's stages and counters. Posted images go
to the same recognition workers as camera frames (``vision.jobs``). docs/http.md is the
user's reference.

Sans-IO core, thin shell: ``regions``, ``uploads``, ``shapes``, ``routes`` and ``metrics`` map
values to values (bytes and headers in, a reply out) and are tested with plain calls;
``server`` is the only module with sockets, h11 and the clock.
"""
