"""Which cameras have retained state on the broker: every configured one, and a few others.

A camera that is not in ``[cameras]`` gets its name from the sender (``cam-<id>``,
``legacy-<address>``), so anyone on the network can make up as many as they like. Each one
that is *announced* gets Home Assistant discovery configs (four retained messages) and the
retained ``<camera>/plate`` and ``<camera>/snapshot`` topics; so at most
``mqtt.max_unconfigured_cameras`` unconfigured cameras are announced at once (per appliance
process). The others still have their events, sightings and known-plate messages published,
without retained state: their plate is published unretained, no snapshot is made.

An announced unconfigured camera with no event for ``mqtt.unconfigured_expire_s`` expires: the
stage clears its retained plate and snapshot and the publisher its discovery configs (empty
retained messages), which frees its place for another camera.

Sans-IO: names and a clock reading in, decisions out (``tests/test_homeassistant_rules.py``).
Invariant: ``len(announced_unconfigured())`` never exceeds the cap, and the memory held is
bounded by it (cameras that are refused a place are not remembered).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class AnnouncedCameras:
    """The announced cameras: every configured one, and up to ``cap`` unconfigured ones."""

    def __init__(self, configured: Iterable[str], cap: int, expire_s: float) -> None:
        self.configured = frozenset(configured)
        self.cap = cap
        self.expire_s = expire_s
        self._unconfigured: OrderedDict[str, float] = OrderedDict()
        """Announced unconfigured camera -> when it was last seen, least recent first."""
        self.refused = 0
        """Events of unconfigured cameras that found no place (published without retained
        state)."""

    def seen(self, camera: str, now: float) -> bool:
        """``camera`` has an event at ``now``: True when it is (now) announced."""
        if camera in self.configured:
            return True
        if camera in self._unconfigured:
            self._unconfigured[camera] = now
            self._unconfigured.move_to_end(camera)
            return True
        if len(self._unconfigured) >= self.cap:
            self.refused += 1
            return False
        self._unconfigured[camera] = now
        return True

    def announced(self, camera: str) -> bool:
        return camera in self.configured or camera in self._unconfigured

    def announced_unconfigured(self) -> list[str]:
        return list(self._unconfigured)

    def expire(self, now: float) -> list[str]:
        """The unconfigured cameras quiet for ``expire_s`` at ``now``, no longer announced."""
        gone: list[str] = []
        while self._unconfigured:
            camera, last = next(iter(self._unconfigured.items()))
            if now - last < self.expire_s:
                break
            del self._unconfigured[camera]
            gone.append(camera)
        return gone
