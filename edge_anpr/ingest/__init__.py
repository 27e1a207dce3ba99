"""Ingest: UDP datagrams in, complete frames out (wire formats in docs/protocol.md).

- ``protocol``: pure parsing/encoding of both wire formats, drop reasons (``DropReason``).
- ``reassembly``: ``Reassembler`` (sans-IO: ``feed(datagram, sender, now_s)`` and
  ``expire(now_s)`` return ``FrameReady`` / ``Dropped`` events; bounded memory), ``IngestStats``.
- ``queue``: ``FrameQueue``, the never-blocking, drop-oldest, per-camera fair hand-off.
- ``udp``: ``run_udp_ingest(cfg, queue, reassembler, task_status=...)``, the trio socket shell.
- ``sender``: ``edge-anpr send``; ``bench``: ``edge-anpr bench ingest``.
"""
