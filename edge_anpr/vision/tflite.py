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

log = logging.getLogger(__name__)


def bundled_models_dir() -> Path:
    """The repository's top-level ``models/`` folder (beside the ``edge_anpr`` package)."""
    return Path(__file__).resolve().parents[2] / "models"


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
        raise ModelError(f"{path}: model file not found (set reader.models_dir or retrain)")
    cls = _interpreter_class()
    try:
        interpreter = cls(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a usable TFLite model: {first}") from None
    return interpreter


EXACT_BATCHES = 8
"""Largest batch size that gets an interpreter of its own (``Int8Model(exact_batch=True)``)."""


class Int8Model:
    """One single-input, single-output model with int8 (or float) input and output tensors.

    ``run`` takes float32 input in the model's real-valued units and returns float32 output,
    doing the (de)quantisation with the scales stored in the file. A batch dimension that the
    model declares dynamic is resized on demand (to a multiple of ``batch_step``; padding rows
    are dropped from the result). With ``exact_batch`` every batch size up to
    ``EXACT_BATCHES`` gets an interpreter of its own instead, for a model whose rows are costly
    (padding would cost more than the row) and whose batch sizes alternate: re-allocating one
    interpreter's tensors at each change holds the GIL.
    """

    def __init__(
        self, path: Path, *, num_threads: int = 1, batch_step: int = 4, exact_batch: bool = False
    ) -> None:
        self.path = path
        self._it = load_interpreter(path, num_threads)
        inputs = self._it.get_input_details()
        outputs = self._it.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path}: expected one input and one output tensor")
        self._in = inputs[0]
        self._out_index = int(outputs[0]["index"])
        self._out = outputs[0]
        self.input_shape = tuple(int(v) for v in self._in["shape"])
        self._num_threads = num_threads
        self._batch_step = 1 if exact_batch else batch_step
        self._exact_batch = exact_batch
        self._sized: dict[int, tuple[Any, dict[str, Any], int]] = {}
        self._batch = self.input_shape[0]
        sig = self._in.get("shape_signature")
        self._dynamic_batch = sig is not None and len(sig) > 0 and int(sig[0]) == -1
        self._in_scale, self._in_zero = self._quant(self._in)
        self._out_scale, self._out_zero = self._quant(self._out)
        log.debug("%s", fields(event="model_loaded", path=path, input=self.input_shape))

    @staticmethod
    def _quant(detail: dict[str, Any]) -> tuple[float, int]:
        scale, zero = detail.get("quantization", (0.0, 0))
        return float(scale), int(zero)

    def _resize(self, n: int) -> None:
        n = -(-n // self._batch_step) * self._batch_step
        self._sized.pop(self._batch, None)  # this interpreter no longer has that size
        self._it.resize_tensor_input(self._in["index"], [n, *self.input_shape[1:]])
        self._it.allocate_tensors()
        self._in = self._it.get_input_details()[0]
        self._out_index = int(self._it.get_output_details()[0]["index"])
        self._batch = n

    def _use_sized(self, n: int) -> None:
        """Switch to this batch size's own interpreter (made on first use)."""
        self._sized.setdefault(self._batch, (self._it, self._in, self._out_index))
        if n not in self._sized:
            it = load_interpreter(self.path, self._num_threads)
            it.resize_tensor_input(self._in["index"], [n, *self.input_shape[1:]])
            it.allocate_tensors()
            out_index = int(it.get_output_details()[0]["index"])
            self._sized[n] = (it, it.get_input_details()[0], out_index)
        self._it, self._in, self._out_index = self._sized[n]
        self._batch = n

    def run(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        n = x.shape[0]
        if n != self._batch and self._exact_batch and self._dynamic_batch and n <= EXACT_BATCHES:
            self._use_sized(n)
        if n != self._batch:
            if not self._dynamic_batch:
                if n > self._batch:
                    raise ModelError(f"{self.path}: batch {n} above fixed batch {self._batch}")
            elif n > self._batch or self._exact_batch or self._batch - n >= 4 * self._batch_step:
                self._resize(n)
        if n < self._batch:
            pad = np.zeros((self._batch - n, *x.shape[1:]), np.float32)
            x = np.concatenate([x, pad])
        dtype = self._in["dtype"]
        if dtype == np.int8 or dtype == np.uint8:
            info = np.iinfo(dtype)
            q = np.round(x / self._in_scale + self._in_zero)
            feed: NDArray[Any] = np.clip(q, info.min, info.max).astype(dtype)
        else:
            feed = x.astype(np.float32)
        self._it.set_tensor(self._in["index"], feed)
        self._it.invoke()
        out = self._it.get_tensor(self._out_index)
        if out.dtype in (np.int8, np.uint8):
            result = (out.astype(np.float32) - self._out_zero) * self._out_scale
        else:
            result = out.astype(np.float32)
        return np.asarray(result[:n], np.float32)
