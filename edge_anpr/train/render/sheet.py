"""Contact sheets of rendered plates, for a person to compare with real crops; with
``boxes=True`` each character box is drawn, coloured from red (first) to blue (last), so
tightness and reading order can be checked by eye."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from edge_anpr.train.render.plate import RenderedPlate


def contact_sheet(
    plates: list[RenderedPlate], cols: int = 6, cell: tuple[int, int] = (260, 150),
    boxes: bool = False,
) -> NDArray[np.uint8]:
    cw, ch = cell
    rows = max(1, (len(plates) + cols - 1) // cols)
    sheet = Image.new("RGB", (cols * cw, rows * ch), (255, 0, 255))
    draw = ImageDraw.Draw(sheet)
    for i, p in enumerate(plates):
        img = Image.fromarray(p.image)
        scale = min((cw - 8) / img.width, (ch - 20) / img.height)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        x, y = (i % cols) * cw + 4, (i // cols) * ch + 4
        sheet.paste(img, (x, y))
        if boxes:
            n = len(p.boxes)
            for k, b in enumerate(p.boxes):
                t = k / max(1, n - 1)
                colour = (int(255 * (1 - t)), 40, int(255 * t))
                draw.rectangle([x + b[0] * scale, y + b[1] * scale, x + b[2] * scale,
                                y + b[3] * scale], outline=colour)
        draw.text((x, y + img.height + 2), f"{p.layout} {p.text}", fill=(0, 0, 0))
    return np.asarray(sheet, np.uint8)
