"""Both LightGBM models as ONE ONNX graph: input `inputs` (rows, columns) float32; outputs `net_return` (rows, 1)
and `fill_probability` (rows, 2: not filled, filled), so that one onnxruntime call scores every arm."""

from __future__ import annotations

import lightgbm as lgb
import onnx
from onnx import compose, helper
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType

from training.onnx_model import INPUT, OUTPUTS

__all__ = ["to_onnx"]

_OPSET = 15  # the newest ONNX opset onnxmltools 1.16 converts to; the tree ensembles are ai.onnx.ml


def _convert(booster: lgb.Booster, columns: int, prefix: str) -> onnx.ModelProto:
    model = convert_lightgbm(booster, initial_types=[(INPUT, FloatTensorType([None, columns]))], zipmap=False,
                             target_opset=_OPSET)
    return compose.add_prefix(model, prefix, rename_inputs=False)


def to_onnx(net_return: lgb.Booster, fill: lgb.Booster, columns: int) -> bytes:
    """The serialised merged model; deterministic for the same boosters."""
    net, prob = _convert(net_return, columns, "net_"), _convert(fill, columns, "fill_")
    net_out = net.graph.output[0].name
    prob_out = next(o.name for o in prob.graph.output if o.name.endswith("probabilities"))
    nodes = [*net.graph.node, *prob.graph.node,
             helper.make_node("Identity", [net_out], [OUTPUTS[0]], name="net_return_out"),
             helper.make_node("Identity", [prob_out], [OUTPUTS[1]], name="fill_probability_out")]
    outputs = [helper.make_tensor_value_info(OUTPUTS[0], onnx.TensorProto.FLOAT, [None, 1]),
               helper.make_tensor_value_info(OUTPUTS[1], onnx.TensorProto.FLOAT, [None, 2])]
    graph = helper.make_graph(nodes, "liqbot_wick_arms", [net.graph.input[0]], outputs,
                              initializer=[*net.graph.initializer, *prob.graph.initializer])
    opsets: dict[str, int] = {}
    for imp in (*net.opset_import, *prob.opset_import):
        opsets[imp.domain] = max(opsets.get(imp.domain, 0), imp.version)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
                              producer_name="liqbot training", ir_version=net.ir_version)
    onnx.checker.check_model(model, full_check=True)
    serialised: bytes = model.SerializeToString()
    return serialised
