"""Several appliance processes on one box: who is who, and what each one owns.

``serve`` with ``workers.processes`` above 1 is a supervisor (``commands/processes.py``) that
binds one UDP socket per process on the ingest port with ``SO_REUSEPORT``, starts one full
appliance process per socket (its own trio nursery, recognition threads, outbox and MQTT
connection) and hands each its socket and its place (``ProcessSlot``) through the environment.

Invariants, kept here so that every part derives them the same way:

- A camera's frames all go to one process: a classic-BPF program on the socket group
  (``steering_program``) sends a sequenced datagram to socket ``camera id % count``; any other
  datagram (the legacy format) goes by the kernel's hash of the sender's address and port, which
  keeps one sender on one socket. Per-camera frame order, the tracker's one event per vehicle
  and the retained ``<camera>/plate`` therefore each stay in one process.
- Each process has its own outbox file (``outbox_path_for``): process 0 keeps the configured
  path, so a box going from one process to several keeps its pending messages; process ``i``
  writes beside it with ``-<i>`` before the suffix. Each saves its replay state in a file of
  its own and loads them all (``ingest.replay_state``). When the count shrinks, the outboxes
  left by the processes that are gone are taken over by the process now serving their cameras
  (``orphan_outboxes``), so no pending message is stranded.
- Each process has its own MQTT client id (``client_id_for``), and its own availability topic:
  ``<prefix>/status`` with one process, ``<prefix>/status/p<i>`` with several
  (``status_suffix``), so that one process's last will does not mark the others offline. The
  Home Assistant entities list every process's topic with ``availability_mode: all``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
from pathlib import Path

from edge_anpr.config import Config

ENV_SLOT = "EDGE_ANPR_PROCESS"
"""``<index>/<count>`` in a child of the supervisor; absent with one process."""
ENV_UDP_FD = "EDGE_ANPR_UDP_FD"
"""The descriptor of the child's bound UDP socket (inherited from the supervisor)."""

SEQUENCED_MAGIC = 0x45414E50
"""``EANP``, the first four bytes of a sequenced datagram (docs/protocol.md)."""
CAMERA_ID_OFFSET = 6
"""Byte offset of the 16-bit camera id in a sequenced datagram's header."""


@dataclasses.dataclass(frozen=True)
class ProcessSlot:
    """This process's place among ``count`` appliance processes sharing one UDP port."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"process slot {self.index}/{self.count}")

    def env(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> ProcessSlot | None:
        """The slot the supervisor gave this process; None when run on its own."""
        text = (os.environ if environ is None else environ).get(ENV_SLOT, "")
        if not text:
            return None
        index, _, count = text.partition("/")
        return cls(int(index), int(count))


def process_count(cfg: Config, cores: int | None = None) -> int:
    """``workers.processes``, or with 0 one process per two cores (at least one).

    Two cores per process: one camera is served by one process, so its threads are what one
    camera can use (two threads give 1.7x of one); cameras beyond the first spread over the
    processes. A 4-core Raspberry Pi runs 2 processes of 2 workers.
    """
    if cfg.workers.processes:
        return cfg.workers.processes
    return max(1, (cores or os.cpu_count() or 1) // 2)


def workers_per_process(cfg: Config, processes: int, cores: int | None = None) -> int:
    """``workers.count``, or with 0 the cores shared out over the processes (at least one)."""
    if cfg.workers.count:
        return cfg.workers.count
    return max(1, (cores or os.cpu_count() or 1) // processes)


def outbox_path_for(path: str, index: int) -> str:
    """Process ``index``'s outbox: ``path`` itself for process 0, else ``<stem>-<i><suffix>``."""
    if index == 0:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{index}{p.suffix}"))


def orphan_outboxes(path: str, slot: ProcessSlot | None) -> list[str]:
    """The outbox files beside ``path`` (process 0's) that this process must take over.

    A box that ran with more processes than it runs now may have left messages in the outboxes
    of processes that no longer exist. Process ``i`` of ``P`` adopts (``Outbox.adopt``) every
    ``<stem>-<j><suffix>`` with ``j >= P`` and ``j % P == i``, the process that now serves
    camera ``j``'s share of the ids, in ascending ``j``. Each file has exactly one adopter,
    so the processes never contend for one. ``path`` is the configured outbox (``:memory:``
    has none); files named so belong to this appliance (docs/fleet.md).
    """
    index, count = (0, 1) if slot is None else (slot.index, slot.count)
    if path == ":memory:":
        return []
    base = Path(path)
    pattern = re.compile(re.escape(base.stem) + r"-([0-9]+)" + re.escape(base.suffix))
    found: list[tuple[int, str]] = []
    try:
        names = os.listdir(base.parent)
    except OSError:
        return []
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        j = int(match.group(1))
        if j >= count and j % count == index and name == Path(outbox_path_for(path, j)).name:
            found.append((j, str(base.parent / name)))
    return [p for _, p in sorted(found)]


def client_id_for(client_id: str, index: int) -> str:
    """Process ``index``'s MQTT client id: the configured one for 0, ``<id>-p<i>`` after."""
    return client_id if index == 0 else f"{client_id}-p{index}"


def status_suffix(slot: ProcessSlot | None) -> str:
    """What follows ``<prefix>/status`` in this process's availability topic."""
    return "" if slot is None or slot.count == 1 else f"/p{slot.index}"


def steering_program(count: int) -> bytes:
    """A ``SO_ATTACH_REUSEPORT_CBPF`` program: sequenced datagrams to socket ``camera % count``.

    The program sees the UDP payload at offset 0. It returns the index of the socket in the
    group (the order the sockets were bound in); for anything but a sequenced datagram it
    returns an index past the last socket, and the kernel then picks by its hash of the
    sender's address, as it does with no program.
    """
    ld_w_abs, ld_h_abs = 0x00 | 0x00 | 0x20, 0x00 | 0x08 | 0x20
    jeq_k = 0x05 | 0x10 | 0x00
    mod_k = 0x04 | 0x90 | 0x00
    ret_a, ret_k = 0x06 | 0x10, 0x06 | 0x00
    code = [
        (ld_w_abs, 0, 0, 0),  # A = first four bytes
        (jeq_k, 0, 3, SEQUENCED_MAGIC),  # not EANP: to the last instruction
        (ld_h_abs, 0, 0, CAMERA_ID_OFFSET),  # A = camera id
        (mod_k, 0, 0, count),  # A %= count
        (ret_a, 0, 0, 0),
        (ret_k, 0, 0, 0xFFFFFFFF),  # no such socket: the kernel's hash decides
    ]
    return b"".join(struct.pack("=HBBI", *insn) for insn in code)
