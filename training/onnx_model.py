"""The ONNX model at run time: one onnxruntime session, one thread, buffers allocated once, bound once.

Single-row scoring is one call on a few arms, where per-call overhead dominates: so one intra-op and one inter-op
thread (no thread hand-offs), sequential execution, no per-call option objects, and the input and output arrays
bound to the session once (IO binding), so that a call allocates nothing (`liqbot bench inference` compares).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from decision.scoring import Floats, ModelCard
from liqbot.errors import LiqbotError

__all__ = ["INPUT", "OUTPUTS", "ModelLoadError", "OnnxModel", "session_options"]

INPUT = "inputs"  # (rows, columns) float32
OUTPUTS = ("net_return", "fill_probability")  # (rows, 1) and (rows, 2: not filled, filled)

_LOAD_ERRORS = (ort_state.Fail, ort_state.InvalidArgument, ort_state.InvalidGraph, ort_state.InvalidProtobuf,
                ort_state.NoSuchFile, ort_state.NotImplemented, ort_state.RuntimeException)


class ModelLoadError(LiqbotError):
    """A model that cannot be used: missing, corrupt, or not the shape the scorer expects."""


def session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class OnnxModel:
    """A `decision.scoring.Model`: `run` on `rows` rows uses the bound buffers, other shapes a plain session call."""

    def __init__(self, model: bytes, card: ModelCard, rows: int, source: str) -> None:
        try:
            self.session = ort.InferenceSession(model, session_options(), providers=["CPUExecutionProvider"])
        except _LOAD_ERRORS as exc:
            raise ModelLoadError(f"{source}: onnxruntime cannot load it ({exc}); rebuild it with `liqbot train`") \
                from exc
        self._card = card
        self._check_signature(source)
        self._inputs = np.zeros((rows, len(card.inputs)), dtype=np.float32)
        self._net_return = np.zeros((rows, 1), dtype=np.float32)
        self._fill = np.zeros((rows, 2), dtype=np.float32)
        self.binding = self.session.io_binding()
        for name, array, bind in ((INPUT, self._inputs, self.binding.bind_input),
                                  (OUTPUTS[0], self._net_return, self.binding.bind_output),
                                  (OUTPUTS[1], self._fill, self.binding.bind_output)):
            bind(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)

    def _check_signature(self, source: str) -> None:
        inputs = [(i.name, i.shape[1]) for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [(INPUT, len(self._card.inputs))] or outputs != list(OUTPUTS):
            raise ModelLoadError(f"{source}: inputs {inputs} and outputs {outputs}, expected "
                                 f"[({INPUT!r}, {len(self._card.inputs)})] and {list(OUTPUTS)}; rebuild it")

    @property
    def card(self) -> ModelCard:
        return self._card

    def run(self, inputs: Floats) -> tuple[Floats, Floats]:
        """(net return given a fill, fill probability) per row; views of buffers reused by the next call."""
        if inputs.shape != self._inputs.shape:
            net_return, fill = self.session.run(list(OUTPUTS), {INPUT: inputs})
            return net_return[:, 0], fill[:, 1]
        np.copyto(self._inputs, inputs)
        self.session.run_with_iobinding(self.binding)
        return self._net_return[:, 0], self._fill[:, 1]
