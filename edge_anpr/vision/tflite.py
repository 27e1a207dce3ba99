"""Loading and running the bundled int8 TFLite models, without TensorFlow.

``ai_edge_litert`` is the interpreter we ship with; ``tflite_runtime`` is accepted only when
``ai_edge_litert`` is not installed (older Raspberry Pi images). Every failure to find, parse or
shape-check a model is a ``ModelError`` whose message is one line naming the file.

An ``Int8Model`` owns its interpreter and is not thread-safe: give each worker thread its own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge_anpr.errors import ModelError
from edge_anpr.logs import fields
from edge_anpr.vision.native_stderr import native_stderr_to_log

log = logging.getLogger(__name__)


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError(
                "no TFLite interpreter installed: pip install ai-edge-litert"
            ) from None
    return Interpreter


def load_interpreter(path: Path, num_threads: int = 1) -> Any:
    """An allocated interpreter for ``path``; ``ModelError`` when missing or broken."""
    if not path.is_file():
        raise ModelError(f"{path}: model file not found (set models.dir or retrain)")
    cls = _interpreter_class()
    try:
        with native_stderr_to_log():  # LiteRT's "INFO: Created ... delegate" line
            interpreter = cls(model_path=str(path), num_threads=num_threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a usable TFLite model: {first}") from None
    return interpreter


MAX_BATCH_SIZES = 12
"""Interpreters kept per model, one per padded batch size; the oldest goes beyond this."""


class Int8Model:
    """One single-input, single-output model with int8 (or float) input and output tensors.

    ``run`` takes float32 input in the model's real-valued units and returns float32 output,
    doing the (de)quantisation with the scales stored in the file. A batch dimension that the
    model declares dynamic is padded up to a multiple of ``batch_step`` (padding rows are
    dropped from the result), and every padded size gets an interpreter of its own, made on
    first use: re-allocating one interpreter's tensors whenever the batch size changes would
    hold the GIL that the other recognition workers wait for. A model whose rows are costly
    (the segmenter) wants ``batch_step=1``; a cheap one (the classifier) a larger step, so a
    few sizes serve every batch.
    """

    def __init__(self, path: Path, *, num_threads: int = 1, batch_step: int = 4) -> None:
        self.path = path
        self._num_threads = num_threads
        first = load_interpreter(path, num_threads)
        inputs = first.get_input_details()
        outputs = first.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path}: expected one input and one output tensor")
        self.input_shape = tuple(int(v) for v in inputs[0]["shape"])
        sig = inputs[0].get("shape_signature")
        self._dynamic_batch = sig is not None and len(sig) > 0 and int(sig[0]) == -1
        self._batch_step = max(1, batch_step)
        self._in_dtype = inputs[0]["dtype"]
        self._in_scale, self._in_zero = self._quant(inputs[0])
        self._out_scale, self._out_zero = self._quant(outputs[0])
        self._sized: dict[int, tuple[Any, int, int]] = {
            self.input_shape[0]: (first, int(inputs[0]["index"]), int(outputs[0]["index"]))
        }
        log.debug("%s", fields(event="model_loaded", path=path, input=self.input_shape))

    @staticmethod
    def _quant(detail: dict[str, Any]) -> tuple[float, int]:
        scale, zero = detail.get("quantization", (0.0, 0))
        return float(scale), int(zero)

    def _interpreter(self, n: int) -> tuple[int, tuple[Any, int, int]]:
        """The padded batch size for ``n`` rows and its interpreter (made on first use)."""
        if not self._dynamic_batch:
            fixed = self.input_shape[0]
            if n > fixed:
                raise ModelError(f"{self.path}: batch {n} above fixed batch {fixed}")
            return fixed, self._sized[fixed]
        size = -(-n // self._batch_step) * self._batch_step
        slot = self._sized.get(size)
        if slot is None:
            it = load_interpreter(self.path, self._num_threads)
            index = int(it.get_input_details()[0]["index"])
            it.resize_tensor_input(index, [size, *self.input_shape[1:]])
            with native_stderr_to_log():
                it.allocate_tensors()
            slot = (it, int(it.get_input_details()[0]["index"]),
                    int(it.get_output_details()[0]["index"]))
            if len(self._sized) >= MAX_BATCH_SIZES:
                del self._sized[next(iter(self._sized))]
            self._sized[size] = slot
        return size, slot

    def quantise(self, x: NDArray[np.float32]) -> NDArray[Any]:
        """Real-valued input in the model's input type (int8 with the file's scale)."""
        dtype = self._in_dtype
        if dtype == np.int8 or dtype == np.uint8:
            info = np.iinfo(dtype)
            q = np.round(x / self._in_scale + self._in_zero)
            return np.clip(q, info.min, info.max).astype(dtype)
        return x.astype(np.float32)

    def pixel_table(self, scale: float) -> NDArray[Any]:
        """``quantise(v * scale)`` for every uint8 value v: with it, 8-bit images go into the
        model through one table look-up instead of several float passes."""
        return self.quantise(np.arange(256, dtype=np.float32) * np.float32(scale))

    def run(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.run_quantised(self.quantise(x))

    def run_quantised(self, feed: NDArray[Any]) -> NDArray[np.float32]:
        """``run`` for input already in the model's input type (``quantise``)."""
        n = feed.shape[0]
        size, (it, in_index, out_index) = self._interpreter(n)
        if n < size:
            feed = np.concatenate([feed, np.zeros((size - n, *feed.shape[1:]), feed.dtype)])
        it.set_tensor(in_index, feed)
        it.invoke()
        out = it.get_tensor(out_index)
        if out.dtype in (np.int8, np.uint8):
            result = (out.astype(np.float32) - self._out_zero) * self._out_scale
        else:
            result = out.astype(np.float32)
        return np.asarray(result[:n], np.float32)
