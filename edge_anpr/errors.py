"""One small error hierarchy.

Like h11's Local/RemoteProtocolError split, the names tell bad input (a sender's datagram, a
user's config file) apart from our own bugs: everything derived from ``EdgeAnprError`` is an
expected, user-facing condition whose message is one readable line saying what was wrong, where,
and what to do. Anything else escaping a stage is a bug and is logged with its traceback.
"""

from __future__ import annotations


class EdgeAnprError(Exception):
    """Base of every expected, user-facing error."""


class ConfigError(EdgeAnprError):
    """The configuration file or a command-line value is wrong; the message names the key."""


class ProtocolError(EdgeAnprError):
    """A datagram broke the wire protocol (bad input from a sender, never our bug)."""


class ModelError(EdgeAnprError):
    """A model file is missing, unreadable or not the shape the code expects."""


class PublishError(EdgeAnprError):
    """The MQTT side cannot work as configured (bad TLS files, refused credentials...)."""


class ImageTooLarge(EdgeAnprError):
    """An image whose header announces more pixels than allowed: refused before decoding."""

    def __init__(self, width: int, height: int, max_pixels: int) -> None:
        super().__init__(
            f"image of {width}x{height} pixels is above the limit of {max_pixels} pixels "
            "(ingest.max_frame_pixels): refused without decoding"
        )
        self.width = width
        self.height = height
        self.max_pixels = max_pixels
