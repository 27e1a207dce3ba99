"""``edge-anpr send``: a small client that pushes frames to the appliance over UDP.

Sources: one image file, a folder of images (sorted by name), a video file, or a webcam index
(digits). Image files are sent as their bytes, unchanged; frames from a video or a webcam are
encoded as JPEG. Frames are paced at ``fps``. In the sequenced format each frame carries the
capture time (now, in microseconds), its frame number and, with a key, the HMAC tag. A frame's
datagrams go to the kernel in one system call where it segments them (UDP GSO, Linux).

Frame numbers start from a millisecond clock rather than 0, so a sender restarted within seconds
continues *ahead* of the numbers the receiver last handed on instead of looking late.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
JPEG_QUALITY = 90


class SourceError(Exception):
    """The frame source cannot be opened or read."""


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def frames_from(source: str, loop: bool) -> Iterator[bytes]:
    """Encoded frames from ``source``; raises SourceError when it cannot be opened."""
    if source.isdigit():
        yield from _capture_frames(int(source), source)
        return
    path = Path(source)
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise SourceError(f"{source}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        while True:
            for f in files:
                yield f.read_bytes()
            if not loop:
                return
    if not path.exists():
        raise SourceError(f"{source}: no such file, folder or webcam index")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        data = path.read_bytes()
        if not data:
            raise SourceError(f"{source}: empty file")
        while True:
            yield data
            if not loop:
                return
    while True:
        yield from _capture_frames(str(path), source)
        if not loop:
            return


def _capture_frames(device: int | str, label: str) -> Iterator[bytes]:
    import cv2

    cap = cv2.VideoCapture(device)
    try:
        if not cap.isOpened():
            raise SourceError(f"{label}: cannot open as a video or webcam")
        got_any = False
        while True:
            ok, image = cap.read()
            if not ok:
                if not got_any:
                    raise SourceError(f"{label}: no frame could be read")
                return
            got_any = True
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if ok:
                yield buf.tobytes()
    finally:
        cap.release()


