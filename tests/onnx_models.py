"""Small ONNX CNNs built node by node with ``onnx.helper`` for the tests.

They do not go through any exporter, so the tests see plain ONNX graphs with
Conv, BatchNormalization, Relu, Add, pooling, Flatten and Gemm nodes.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tvm_snn.train.exporter import MAX_IR_VERSION, ONNX_OPSET


class GraphBuilder:
    """Accumulate nodes and initializers; names are generated."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.initializers = []
        self.count = 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, array, prefix="w"):
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def node(self, op, inputs, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, k, stride=1, pad=None, bias=True):
        pad = k // 2 if pad is None else pad
        weight = self.rng.standard_normal((cout, cin, k, k)).astype(np.float32) / np.sqrt(cin * k * k)
        inputs = [x, self.const(weight)]
        if bias:
            inputs.append(self.const(self.rng.standard_normal(cout).astype(np.float32) * 0.1, "b"))
        return self.node("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def bn(self, x, channels):
        gamma = self.rng.uniform(0.5, 1.5, channels).astype(np.float32)
        gamma[::3] *= -1  # some negative gammas, as a trained BN may have
        beta = self.rng.standard_normal(channels).astype(np.float32) * 0.1
        mean = self.rng.standard_normal(channels).astype(np.float32) * 0.1
        var = self.rng.uniform(0.5, 1.5, channels).astype(np.float32)
        names = [self.const(a, "bn") for a in (gamma, beta, mean, var)]
        return self.node("BatchNormalization", [x, *names], epsilon=1e-5)

    def model(self, inputs, output, output_shape):
        graph = helper.make_graph(
            self.nodes,
            "test_cnn",
            inputs,
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape)],
            self.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], ir_version=MAX_IR_VERSION)
        onnx.checker.check_model(model)
        return model


def _input(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _basic_block(g, x, cin, cout, stride):
    y = g.node("Relu", [g.bn(g.conv(x, cin, cout, 3, stride, bias=False), cout)])
    y = g.bn(g.conv(y, cout, cout, 3, 1, bias=False), cout)
    shortcut = x
    if stride != 1 or cin != cout:
        shortcut = g.bn(g.conv(x, cin, cout, 1, stride, pad=0, bias=False), cout)
    return g.node("Relu", [g.node("Add", [y, shortcut])])


def resnet_cnn(batch=1, size=16, classes=10, seed=0):
    """A CIFAR-style residual CNN: stem, two basic blocks (one strided, 1x1 downsample), pool, Gemm."""
    g = GraphBuilder(seed)
    x = g.node("Relu", [g.bn(g.conv("input", 3, 8, 3), 8)])
    x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = _basic_block(g, x, 8, 8, 1)
    x = _basic_block(g, x, 8, 16, 2)
    x = g.node("GlobalAveragePool", [x])
    x = g.node("Flatten", [x], axis=1)
    fc = g.rng.standard_normal((classes, 16)).astype(np.float32) * 0.3
    out = g.node("Gemm", [x, g.const(fc), g.const(np.zeros(classes, np.float32), "b")], transB=1)
    return g.model([_input("input", (batch, 3, size, size))], out, [batch, classes])


def plain_cnn(batch=1, size=12, seed=1):
    """Conv with bias, ReLU, average pooling, a strided conv and Gemm."""
    g = GraphBuilder(seed)
    x = g.node("Relu", [g.conv("input", 4, 8, 3)])
    x = g.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = g.conv(x, 8, 16, 3, stride=2, pad=1)
    x = g.node("Flatten", [x], axis=1)
    features = 16 * ((size // 2 + 1) // 2) ** 2
    fc = g.rng.standard_normal((5, features)).astype(np.float32) * 0.1
    out = g.node("Gemm", [x, g.const(fc), g.const(np.ones(5, np.float32), "b")], transB=1)
    return g.model([_input("input", (batch, 4, size, size))], out, [batch, 5])


def unsupported_op_model():
    """A graph with a Celu node, which TVM's ONNX frontend does not convert."""
    g = GraphBuilder(2)
    out = g.node("Celu", [g.conv("input", 3, 4, 3)], alpha=1.0)
    return g.model([_input("input", (1, 3, 8, 8))], out, [1, 4, 8, 8])
