"""The compiler and the functional simulator: bit-exact against the reference, within the buffers."""

import numpy as np
import pytest
from fpga_layers import SMALL_SPEC, binary_conv, expected_output, subbit_conv, ternary_input

from hw_targets.compiler import buffer_elements, compile_conv, dram_image, read_output
from hw_targets.isa import decode_stream
from hw_targets.layer import FpgaConv
from hw_targets.networks import bnn_layer, resnet_convs, subbit_layer
from hw_targets.sim import simulate
from hw_targets.spec import load_spec
from tvm_snn.errors import FpgaLayerError

SPECS = ("paper", "pynq-z1", "small")


def _spec(name):
    return load_spec(SMALL_SPEC if name == "small" else name)


def _run(layer, spec, x, residual=None):
    program = compile_conv(layer, _spec(spec))
    assert tuple(decode_stream(program.stream())) == program.instructions  # the stream encodes
    dram = dram_image(program, layer, x, residual)
    simulate(program, dram)
    return program, read_output(dram, layer)


@pytest.mark.parametrize("tau", range(1, 9))
@pytest.mark.parametrize("stride", (1, 2))
def test_subbit_3x3_is_bit_exact(tau, stride):
    rng = np.random.default_rng(tau * 10 + stride)
    padding = int(rng.integers(0, 3))
    conv = subbit_conv(rng, 3, tau, in_channels=24, out_channels=19, stride=stride, padding=padding)
    layer = FpgaConv(conv, (2, 24, 9, 11))
    x = ternary_input(rng, layer.input_shape)
    want = expected_output(layer, x)
    for spec in SPECS:
        _, got = _run(layer, spec, x)
        np.testing.assert_array_equal(
            got, want, err_msg=f"{spec}, tau={tau}, stride={stride}, padding={padding}"
        )


@pytest.mark.parametrize("tau", (1, 4, 8))
def test_subbit_1x1_is_bit_exact(tau):
    rng = np.random.default_rng(100 + tau)
    conv = subbit_conv(rng, 1, tau, in_channels=40, out_channels=12, stride=2)
    layer = FpgaConv(conv, (1, 40, 9, 8))
    x = ternary_input(rng, layer.input_shape)
    for spec in SPECS:
        np.testing.assert_array_equal(
            _run(layer, spec, x)[1], expected_output(layer, x), err_msg=spec
        )


@pytest.mark.parametrize(
    ("kernel", "stride", "padding"), [(3, 1, 1), (3, 2, 1), (3, 1, 0), (1, 2, 0)]
)
def test_bnn_conv_is_bit_exact(kernel, stride, padding):
    rng = np.random.default_rng(kernel * 7 + stride + padding)
    conv = binary_conv(rng, kernel, in_channels=16, out_channels=21, stride=stride, padding=padding)
    bias = rng.standard_normal(21).astype(np.float32)
    layer = FpgaConv(conv, (2, 16, 10, 7), bias=bias)
    x = ternary_input(rng, layer.input_shape)
    for spec in SPECS:
        np.testing.assert_array_equal(
            _run(layer, spec, x)[1], expected_output(layer, x), err_msg=spec
        )


@pytest.mark.parametrize("relu", (False, True))
@pytest.mark.parametrize("subbit", (True, False))
def test_residual_relu_and_sign_epilogue(subbit, relu):
    rng = np.random.default_rng(5)
    conv = (
        subbit_conv(rng, 3, 5, 16, 16, padding=1)
        if subbit
        else binary_conv(rng, 3, 16, 16, padding=1)
    )
    layer = FpgaConv(conv, (1, 16, 8, 8), residual=True, relu=relu, sign=True)
    x = ternary_input(rng, layer.input_shape)
    residual = rng.standard_normal(layer.output_shape).astype(np.float32)
    residual[0, 0, 0, 0] = -expected_output(FpgaConv(conv, layer.input_shape), x)[
        0, 0, 0, 0
    ]  # an exact 0
    want = expected_output(layer, x, residual)
    assert (
        set(np.unique(want)) == ({0.0, 1.0} if relu else {-1.0, 0.0, 1.0}) and want[0, 0, 0, 0] == 0
    )
    for spec in SPECS:
        np.testing.assert_array_equal(_run(layer, spec, x, residual)[1], want, err_msg=spec)


def test_small_buffers_force_many_tiles():
    """The 'small' spec cuts a 40-channel 11x11 layer into row tiles, unit tiles and output chunks."""
    rng = np.random.default_rng(9)
    layer = FpgaConv(subbit_conv(rng, 3, 5, 40, 30, padding=1), (2, 40, 11, 11), residual=True)
    x = ternary_input(rng, layer.input_shape)
    residual = rng.standard_normal(layer.output_shape).astype(np.float32)
    program, got = _run(layer, "small", x, residual)
    np.testing.assert_array_equal(got, expected_output(layer, x, residual))
    relu_layer = FpgaConv(layer.conv, layer.input_shape, residual=True, relu=True)
    np.testing.assert_array_equal(
        _run(relu_layer, "small", x, residual)[1], expected_output(relu_layer, x, residual)
    )
    tiling = program.info["tiling"]
    assert tiling.rows < 11 and tiling.units < 40 and tiling.channels < 30
    assert program.info["instructions"]["GATHER"] > 4
    np.testing.assert_array_equal(got, expected_output(layer, x, residual))


@pytest.mark.parametrize("spec", ("paper", "pynq-z1"))
@pytest.mark.parametrize("network", ("resnet18", "resnet34"))
def test_every_resnet_layer_fits_and_runs(network, spec):
    """Every binary conv (and shortcut) of the ImageNet ResNets compiles within the buffers and runs exactly."""
    rng = np.random.default_rng(0)
    caps = buffer_elements(load_spec(spec))
    seen = set()
    for shape in resnet_convs(network, shortcuts=True):
        key = (shape.in_channels, shape.out_channels, shape.kernel, shape.stride, shape.size)
        for layer in (subbit_layer(shape, 5, rng), bnn_layer(shape, rng)):
            program = compile_conv(layer, spec)
            assert all(0 < share <= 1 for share in program.info["buffer_use"].values()), shape
            assert (
                caps["accumulator"]
                >= layer.out_channels * program.info["tiling"].rows * layer.output_shape[3]
            )
            if key in seen:
                continue  # the same shape runs once per network
            x = ternary_input(rng, layer.input_shape)
            dram = dram_image(program, layer, x)
            simulate(program, dram)
            np.testing.assert_array_equal(
                read_output(dram, layer), expected_output(layer, x), err_msg=shape.name
            )
        seen.add(key)


def test_layers_the_accelerator_cannot_run_are_refused():
    rng = np.random.default_rng(1)
    float_conv = subbit_conv(rng, 3, 5, 8, 8)
    float_conv = type(float_conv)(**{**float_conv.__dict__, "activation": "float"})
    cases = [
        (FpgaConv(float_conv, (1, 8, 5, 5)), "binary inputs only"),
        (FpgaConv(subbit_conv(rng, 3, 5, 8, 8), (1, 9, 5, 5)), "9 channels but the conv takes 8"),
        (FpgaConv(binary_conv(rng, 5, 8, 8), (1, 8, 9, 9)), "unsupported kernel"),
        (FpgaConv(subbit_conv(rng, 3, 5, 8, 8), (1, 8, 2, 2)), "too small"),
    ]
    for layer, message in cases:
        with pytest.raises(FpgaLayerError, match=message):
            compile_conv(layer, "paper")
    narrow = dict(load_spec("paper").to_dict(), name="narrow", accumulator_bits=8, max_tau=4)
    with pytest.raises(FpgaLayerError, match="tau=5 is above the 'narrow' datapath's max_tau=4"):
        compile_conv(FpgaConv(subbit_conv(rng, 3, 5, 8, 8), (1, 8, 5, 5)), narrow)
    narrow["max_tau"] = 8
    with pytest.raises(FpgaLayerError, match="beyond the 8-bit accumulators"):
        compile_conv(FpgaConv(subbit_conv(rng, 3, 5, 16, 8), (1, 16, 5, 5)), narrow)


def test_dram_image_checks_the_input_shape():
    rng = np.random.default_rng(2)
    layer = FpgaConv(subbit_conv(rng, 3, 5, 8, 8), (1, 8, 5, 5))
    program = compile_conv(layer, "paper")
    with pytest.raises(FpgaLayerError, match="compiled for"):
        dram_image(program, layer, np.zeros((1, 8, 6, 5), np.float32))
