"""The plate detector: histogram-of-oriented-gradients features and linear SVMs.

The features are Dalal-Triggs HoG computed the way fast feature pyramids do it rather than
with ``cv2.HOGDescriptor`` per window: orientation channels once per octave, one pooled cell
grid per searched plate width, and every plate shape's window SVM scored over all positions
of all grids at once. Candidates then pass non-maximum suppression and a second, finer HoG
look (the verifier) before the reader is asked.

Modules, in the order a frame goes through them:

* ``features``: orientation channels, 2x2 pooling and L2-Hys block normalisation;
* ``pyramid``: the octaves and the cell grid of each searched plate width;
* ``layout``: all widths' grids packed in one canvas, and each window's box;
* ``scoring``: every window's linear SVM score;
* ``verifier``: the second-stage features and SVM;
* ``model``: the window models and verifier, and their file format;
* ``detector``: ``PlateDetector``, which runs the above on one image;
* ``scratch`` and ``blas``: per-thread buffers and keeping BLAS on the calling thread.

Training (``edge_anpr.train.detector``) extracts its examples with these same functions.
"""

from edge_anpr.vision.hog.detector import (
    Detection,
    PlateDetector,
    default_model_path,
    load_detector,
)
from edge_anpr.vision.hog.model import DetectorModel, WindowModel
from edge_anpr.vision.hog.verifier import Verifier

__all__ = [
    "Detection",
    "DetectorModel",
    "PlateDetector",
    "Verifier",
    "WindowModel",
    "default_model_path",
    "load_detector",
]
