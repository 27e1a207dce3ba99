"""Boxes at either end of a plate's line that are marks, not characters (pure).

The segmenter boxes what looks like a character; at the ends of a US plate's line that is often
something else the labels leave out: a county number or a stacked prefix printed smaller
beside the serial (Wyoming's ``2 | 248``, Idaho's ``1B``, North Carolina's ``IR``), or an
emblem the size of a character (a seal, a wheelchair, a loon). The classifier's "not a
character" class misses some of them (``vision.reader.JUNK_THRESHOLD``). ``drop_end_marks``
drops the first or last box of a line when

* it is short and off the line: lower than ``END_MARK_HEIGHT`` of the median box height, with
  its centre more than ``END_MARK_DY`` of that height above or below the line (the median
  centre): a stacked or small mark, never a character of the serial, which sits on the line;
* or it is wide and unsure: wider than ``EMBLEM_WIDTH`` of the median box width, and the
  classifier gives its best character less than ``EMBLEM_MAX_P``: a graphic, not a letter.

Only when the box next to it sits on the line (centre within ``ON_LINE_DY`` of the height),
so the boxes of a two-line plate, whose median centre lies between its lines, are never
dropped; and only on plates of at least ``MIN_BOXES`` boxes.

Chosen on the training split (2,640 US, Brazilian and scene plates; docs/performance.md,
"Marks at a line's end"): the short rule with 0.8 and 0.15 dropped 6 boxes that the labels
leave out and 1 that they hold (of a plate already misread); the wide rule with 1.3 and 0.8
dropped 4 and none. Looser values (0.85 / 0.1; 1.2) dropped characters of correct reads.
"""

from __future__ import annotations

from collections.abc import Sequence

END_MARK_HEIGHT = 0.8
END_MARK_DY = 0.15
EMBLEM_WIDTH = 1.3
EMBLEM_MAX_P = 0.8
ON_LINE_DY = 0.2
MIN_BOXES = 4


def _median(values: list[float]) -> float:
    """``statistics.median`` without its overhead (every read runs this)."""
    data = sorted(values)
    n = len(data)
    return data[n // 2] if n % 2 else (data[n // 2 - 1] + data[n // 2]) / 2


def drop_end_marks(boxes: Sequence[Sequence[float]], top_p: Sequence[float]) -> list[int]:
    """The indices of ``boxes`` (x0, y0, x1, y1 first, in reading order) to keep, in order;
    ``top_p`` is the classifier's probability of each box's best character."""
    n = len(boxes)
    keep = list(range(n))
    if n < MIN_BOXES:
        return keep
    h = _median([b[3] - b[1] for b in boxes])
    line = _median([b[1] + b[3] for b in boxes]) / 2
    w = 0.0  # the median width, worked out when an end box is unsure enough to need it

    def off_line(box: Sequence[float]) -> float:
        return abs((box[1] + box[3]) / 2 - line)

    for i, neighbour in ((n - 1, n - 2), (0, 1)):
        box = boxes[i]
        if off_line(boxes[neighbour]) >= ON_LINE_DY * h:
            continue
        small = box[3] - box[1] < END_MARK_HEIGHT * h and off_line(box) > END_MARK_DY * h
        if not small and top_p[i] < EMBLEM_MAX_P:
            w = w or _median([b[2] - b[0] for b in boxes])
            small = box[2] - box[0] > EMBLEM_WIDTH * w
        if small:
            del keep[i]
    return keep
