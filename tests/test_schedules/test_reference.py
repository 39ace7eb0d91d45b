"""Tests of the NumPy reference against dense convolutions computed two other ways."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_schedules.subbit_strategies import SEED_MAX, convs_with_inputs, random_codebook

from schedules.reference import (
    accumulate_binary,
    binarize,
    conv2d_dense_reference,
    conv2d_reference,
    responses_binary,
    responses_float,
    unit_patches,
)
from schedules.subbit import UNIT_1X1, UNIT_3X3, SubBitConv, as_padding, decode_signs
from tvm_snn.errors import InputError

from common import REF_ATOL, REF_RTOL, SCHEDULES_MAX_EXAMPLES

EXAMPLES = SCHEDULES_MAX_EXAMPLES
SEED = 7
DENSE_SHAPES = {"batch": (1, 2), "channels": (1, 4), "out_channels": (1, 4), "kernel": (1, 3), "size": (5, 8)}  # 5: a dilated 3x3 fits


def loop_conv(x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1)):
    """Direct convolution by loops over outputs and taps; padding by bounds checks."""
    x, weight = np.asarray(x, np.float64), np.asarray(weight, np.float64)
    batch, _, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    top, left, bottom, right = padding
    out_h = (height + top + bottom - dilation[0] * (kernel_h - 1) - 1) // stride[0] + 1
    out_w = (width + left + right - dilation[1] * (kernel_w - 1) - 1) // stride[1] + 1
    y = np.zeros((batch, out_channels, out_h, out_w))
    for oh in range(out_h):
        for ow in range(out_w):
            for kh in range(kernel_h):
                for kw in range(kernel_w):
                    ih = oh * stride[0] - top + kh * dilation[0]
                    iw = ow * stride[1] - left + kw * dilation[1]
                    if 0 <= ih < height and 0 <= iw < width:
                        y[:, :, oh, ow] += x[:, :, ih, iw] @ weight[:, :, kh, kw].T
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    return y


def geometry(conv: SubBitConv) -> dict:
    return {"stride": conv.stride, "padding": conv.padding, "dilation": conv.dilation}


def unit_weight(conv: SubBitConv) -> np.ndarray:
    """The conv's +1/-1 weight without alpha."""
    return conv.codebook[conv.indices].reshape(conv.weight_shape).astype(np.float64)


# --------------------------------------------------------------------------
# The dense reference itself
# --------------------------------------------------------------------------


@st.composite
def dense_cases(draw):
    sizes = {name: draw(st.integers(*bounds)) for name, bounds in DENSE_SHAPES.items()}
    rng = np.random.default_rng(draw(st.integers(0, SEED_MAX)))
    x = rng.normal(size=(sizes["batch"], sizes["channels"], sizes["size"], sizes["size"] + 1))
    kernel = (sizes["kernel"], sizes["kernel"])
    weight = rng.normal(size=(sizes["out_channels"], sizes["channels"], *kernel))
    bias = rng.normal(size=sizes["out_channels"])
    options = {
        "stride": draw(st.sampled_from((1, 2, (2, 1)))),
        "padding": as_padding(draw(st.sampled_from((0, 1, (0, 2), (1, 0, 2, 1))))),
        "dilation": draw(st.sampled_from((1, (1, 2)))),
    }
    return x, weight, bias, options


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=dense_cases())
def test_dense_reference_matches_loops(case):
    x, weight, bias, options = case
    pairs = {name: (value, value) if isinstance(value, int) else value for name, value in options.items()}
    expected = loop_conv(x, weight, bias, **pairs)
    actual = conv2d_dense_reference(x, weight, bias, **options)
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=REF_RTOL, atol=REF_ATOL)


def test_dense_reference_known_values():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    weight = np.ones((1, 1, 3, 3))
    y = conv2d_dense_reference(x, weight, [1.0], padding=1)
    assert y[0, 0, 0, 0] == 0 + 1 + 4 + 5 + 1
    assert y[0, 0, 1, 1] == sum(range(0, 3)) + sum(range(4, 7)) + sum(range(8, 11)) + 1


# --------------------------------------------------------------------------
# The sub-bit reference against the dense convs
# --------------------------------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=convs_with_inputs(activations=("float",)))
def test_float_reference_matches_dense(case):
    conv, x = case
    y = conv2d_reference(x, conv)
    assert y.dtype == np.float32
    assert y.shape == (x.shape[0], conv.out_channels, *conv.output_hw(*x.shape[2:]))
    dense = conv2d_dense_reference(x, conv.to_dense(), conv.bias, **geometry(conv))
    np.testing.assert_allclose(y, dense, rtol=REF_RTOL, atol=REF_ATOL)
    np.testing.assert_allclose(y, loop_conv(x, conv.to_dense(), conv.bias, **geometry(conv)), rtol=REF_RTOL, atol=REF_ATOL)


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=convs_with_inputs(activations=("binary",)))
def test_binary_reference_matches_dense_on_sign(case):
    conv, x = case
    y = conv2d_reference(x, conv)
    expected = loop_conv(np.sign(x), conv.to_dense(), conv.bias, **geometry(conv))
    np.testing.assert_allclose(y, expected, rtol=REF_RTOL, atol=REF_ATOL)
    dense = conv2d_dense_reference(np.sign(x), conv.to_dense(), conv.bias, **geometry(conv))
    np.testing.assert_allclose(y, dense, rtol=REF_RTOL, atol=REF_ATOL)


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=convs_with_inputs())
def test_binary_accumulators_are_exact(case):
    conv, x = case
    accumulator = accumulate_binary(x, conv)
    assert accumulator.dtype == np.int32
    expected = loop_conv(np.sign(x), unit_weight(conv), **geometry(conv))
    np.testing.assert_array_equal(accumulator, expected.astype(np.int64))


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=convs_with_inputs())
def test_binary_responses_are_codeword_dot_products(case):
    conv, x = case
    responses = responses_binary(x, conv)
    batch, out_h, out_w = x.shape[0], *conv.output_hw(*x.shape[2:])
    assert responses.dtype == np.int32
    assert responses.shape == (batch, conv.num_units, conv.num_codewords, out_h, out_w)
    assert np.abs(responses).max() <= conv.unit_size
    # Unit u's responses are a dense conv of its channels of sign(x) with every codeword.
    per_unit = conv.channels_per_unit
    codewords = conv.codebook.reshape(conv.num_codewords, per_unit, *conv.kernel_size)
    for u in range(conv.num_units):
        channels = slice(u * per_unit, (u + 1) * per_unit)
        expected = loop_conv(np.sign(x[:, channels]), codewords, **geometry(conv))
        np.testing.assert_array_equal(responses[:, u], expected.astype(np.int64))


def test_binary_responses_are_odd_without_zeros():
    rng = np.random.default_rng(SEED)
    codebook = random_codebook(rng, 4, UNIT_3X3, opposite_free=False)
    conv = SubBitConv(kernel_size=3, tau=2, codebook=codebook, indices=np.zeros((1, 3), dtype=int), alpha=[1.0])
    x = rng.uniform(0.5, 1.0, size=(1, 3, 6, 6)) * rng.choice((-1, 1), size=(1, 3, 6, 6))
    assert np.all(responses_binary(x, conv) % 2 == 1)


def test_float_responses_at_one_position():
    rng = np.random.default_rng(SEED)
    conv = SubBitConv(
        kernel_size=1, tau=2, codebook=decode_signs(np.array([3, 200, 17]), UNIT_1X1),
        indices=np.array([[2, 0]]), alpha=[1.0], stride=2,
    )
    x = rng.normal(size=(1, 16, 5, 5))
    responses = responses_float(x, conv)
    assert responses.shape == (1, 2, 3, 3, 3)
    np.testing.assert_allclose(responses[0, 1, 1, 2, 0], x[0, 8:16, 4, 0] @ conv.codebook[1])


def test_unit_patches_3x3_order():
    x = np.arange(2 * 9, dtype=np.float32).reshape(1, 2, 3, 3)
    conv = SubBitConv(kernel_size=3, tau=1, codebook=np.ones((1, 9)), indices=np.zeros((1, 2), dtype=int), alpha=[1.0])
    patches = unit_patches(x, conv)
    assert patches.shape == (1, 2, 9, 1, 1)
    np.testing.assert_array_equal(patches[0, 1, :, 0, 0], np.arange(9, 18))


# --------------------------------------------------------------------------
# Binary semantics: sign(0) = 0 and zero padding
# --------------------------------------------------------------------------


def all_plus_conv(activation: str, padding=1, bias=None) -> SubBitConv:
    return SubBitConv(
        kernel_size=3, tau=1, codebook=np.ones((1, UNIT_3X3)), indices=np.zeros((1, 2), dtype=int),
        alpha=[0.5], bias=bias, padding=padding, activation=activation,
    )


def test_binarize_maps_zero_to_zero():
    np.testing.assert_array_equal(binarize(np.array([-2.0, -0.0, 0.0, 3.0])), [-1, 0, 0, 1])
    with pytest.raises(InputError, match="finite"):
        binarize(np.array([np.nan]))


def test_binary_zero_input_gives_bias():
    conv = all_plus_conv("binary", bias=[0.25])
    y = conv2d_reference(np.zeros((1, 2, 4, 4)), conv)
    np.testing.assert_array_equal(y, np.full((1, 1, 4, 4), 0.25, dtype=np.float32))


def test_binary_padding_is_zero_not_minus_one():
    x = np.full((1, 2, 4, 4), 0.3)
    y = conv2d_reference(x, all_plus_conv("binary"))
    # Two channels of +1 signs: a corner window sees 2x2 inputs, an edge 2x3, the middle 3x3.
    assert y[0, 0, 0, 0] == 0.5 * 2 * 4
    assert y[0, 0, 0, 1] == 0.5 * 2 * 6
    assert y[0, 0, 1, 1] == 0.5 * 2 * 9


def test_binary_differs_from_float_activation():
    x = np.full((1, 2, 4, 4), 0.3)
    y_float = conv2d_reference(x, all_plus_conv("float"))
    y_binary = conv2d_reference(x, all_plus_conv("binary"))
    np.testing.assert_allclose(y_binary, y_float / 0.3, rtol=REF_RTOL)


def test_asymmetric_padding_shape_and_values():
    rng = np.random.default_rng(SEED)
    conv = SubBitConv.from_dense(all_plus_conv("float").to_dense(), padding=(0, 1, 1, 2))
    x = rng.normal(size=(1, 2, 5, 5))
    y = conv2d_reference(x, conv)
    assert y.shape == (1, 1, 4, 6)
    # Output (3, 5) reads padded rows 3..5 and columns 5..7: of those only x[3:5, 4] is real.
    assert y[0, 0, 3, 5] == pytest.approx(0.5 * x[0, :, 3:5, 4].sum(), rel=REF_RTOL)


# --------------------------------------------------------------------------
# Input errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros((1, 3, 4, 4)), r"2 channels, got float64 \(1, 3, 4, 4\)"),
        (np.zeros((2, 4, 4)), r"NCHW.*\(2, 4, 4\)"),
        (np.zeros((1, 2, 4, 4), dtype=complex), "real"),
        (np.zeros((1, 2, 1, 1)), "too small"),
    ],
)
def test_reference_rejects_bad_inputs(x, match):
    with pytest.raises(InputError, match=match):
        conv2d_reference(x, all_plus_conv("float", padding=0))


def test_binary_reference_rejects_nan():
    x = np.zeros((1, 2, 4, 4))
    x[0, 1, 2, 2] = np.nan
    with pytest.raises(InputError, match="finite"):
        conv2d_reference(x, all_plus_conv("binary"))


def test_dense_reference_rejects_mismatch():
    with pytest.raises(InputError, match="3 channels"):
        conv2d_dense_reference(np.zeros((1, 2, 4, 4)), np.zeros((1, 3, 3, 3)))
    with pytest.raises(InputError, match="OIHW"):
        conv2d_dense_reference(np.zeros((1, 2, 4, 4)), np.zeros((1, 2, 3)))
