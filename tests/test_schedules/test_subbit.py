"""Tests of the sub-bit conv format: validation, bit packing, dense round trips."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_schedules.subbit_strategies import random_codebook, sub_bit_convs

from schedules.subbit import (
    KERNEL_1X1,
    KERNEL_3X3,
    MAX_TAU,
    MAX_TAU_1X1,
    MAX_TAU_3X3,
    PACKED_FORMAT_VERSION,
    UNIT_1X1,
    UNIT_3X3,
    SubBitConv,
    decode_signs,
    encode_signs,
    pack_indices,
    packed_length,
    unpack_indices,
)
from tvm_snn.errors import FormatError
from tvm_snn.schema import code_to_signs, negate_code, signs_to_code

from common import ROUNDTRIP_RTOL, SCHEDULES_MAX_EXAMPLES

EXAMPLES = SCHEDULES_MAX_EXAMPLES
SEED = 20240611
MAX_COUNT = 300
BN_TAU = 5
BN_OUT_CHANNELS = 16
BN_IN_CHANNELS = 8
BN_NEGATIVE_CHANNELS = (1, 4, 9, 13)
BN_EPS = 1e-5


def make_conv(**overrides) -> SubBitConv:
    """A small valid 3x3 conv: 4 codewords, 3 output and 2 input channels."""
    fields = {
        "kernel_size": KERNEL_3X3,
        "tau": 2,
        "codebook": decode_signs(np.array([0, 5, 300, 511]), UNIT_3X3),
        "indices": np.array([[0, 1], [2, 3], [3, 3]]),
        "alpha": np.array([0.5, -1.0, 2.0], dtype=np.float32),
        "bias": np.array([0.1, 0.2, 0.3], dtype=np.float32),
    }
    fields.update(overrides)
    return SubBitConv(**fields)


def used_codes(conv: SubBitConv) -> set[int]:
    """Codes of the codebook rows that nonzero channels use."""
    rows = conv.indices[conv.alpha != 0]
    return set(encode_signs(conv.codebook[rows.reshape(-1)]).tolist())


def negated(codes: set[int], width: int) -> set[int]:
    return {code ^ ((1 << width) - 1) for code in codes}


# --------------------------------------------------------------------------
# Bit packing
# --------------------------------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    tau=st.integers(1, MAX_TAU),
    count=st.integers(0, MAX_COUNT),
    seed=st.integers(0, 2**32 - 1),
)
def test_pack_round_trip(tau, count, seed):
    values = np.random.default_rng(seed).integers(0, 1 << tau, size=count)
    packed = pack_indices(values, tau)
    assert packed.dtype == np.uint8
    assert packed.shape == (math.ceil(count * tau / 8),)
    np.testing.assert_array_equal(unpack_indices(packed, tau, count), values)


@pytest.mark.parametrize("tau", range(1, MAX_TAU + 1))
def test_pack_round_trip_extremes(tau):
    values = np.array([0, (1 << tau) - 1, 1, (1 << tau) - 1, 0])
    np.testing.assert_array_equal(unpack_indices(pack_indices(values, tau), tau, values.size), values)


def test_pack_bit_layout_is_little_endian():
    # 1 -> bits 1,0,0; 2 -> 0,1,0; 7 -> 1,1,1: stream 10001011 1 (LSB first).
    packed = pack_indices(np.array([1, 2, 7]), 3)
    np.testing.assert_array_equal(packed, np.array([0b11010001, 0b00000001], dtype=np.uint8))


def test_pack_is_dense():
    assert pack_indices(np.full(8, 511), 9).size == 9
    assert packed_length(10, 5) == 7


def test_pack_reads_any_shape_in_c_order():
    values = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(unpack_indices(pack_indices(values, 4), 4, 12), values.reshape(-1))


@pytest.mark.parametrize(
    ("values", "tau", "match"),
    [
        (np.array([0, 8]), 3, r"\[0, 8\).*position 1 holds 8"),
        (np.array([-1]), 3, "position 0 holds -1"),
        (np.array([0.0, 1.0]), 3, "integers"),
        (np.array([0]), 0, "tau"),
        (np.array([0]), MAX_TAU + 1, "tau"),
        (np.array([0]), True, "tau"),
    ],
)
def test_pack_rejects(values, tau, match):
    with pytest.raises(FormatError, match=match):
        pack_indices(values, tau)


@pytest.mark.parametrize(
    ("packed", "tau", "count", "match"),
    [
        (np.zeros(1, dtype=np.uint8), 3, 3, r"shape \(2,\)"),
        (np.zeros(3, dtype=np.uint8), 3, 3, r"shape \(2,\)"),
        (np.zeros((1, 2), dtype=np.uint8), 3, 3, r"shape \(2,\)"),
        (np.zeros(2, dtype=np.int16), 3, 3, "uint8"),
        (np.array([0, 0b10], dtype=np.uint8), 3, 3, "padding bits"),
        (np.zeros(0, dtype=np.uint8), 3, -1, "count"),
    ],
)
def test_unpack_rejects(packed, tau, count, match):
    with pytest.raises(FormatError, match=match):
        unpack_indices(packed, tau, count)


@settings(max_examples=EXAMPLES, deadline=None)
@given(width=st.sampled_from((UNIT_3X3, UNIT_1X1)), seed=st.integers(0, 2**32 - 1))
def test_signs_round_trip(width, seed):
    codes = np.random.default_rng(seed).integers(0, 1 << width, size=20)
    signs = decode_signs(codes, width)
    assert set(np.unique(signs)) <= {-1, 1}
    np.testing.assert_array_equal(encode_signs(signs), codes)


@pytest.mark.parametrize("width", [UNIT_3X3, UNIT_1X1])
def test_packed_code_is_the_schema_code_of_the_negated_unit(width):
    codes = np.arange(1 << width)
    units = code_to_signs(codes, width)
    np.testing.assert_array_equal(encode_signs(units), signs_to_code(-units))
    np.testing.assert_array_equal(encode_signs(units), negate_code(codes, width))
    np.testing.assert_array_equal(decode_signs(codes, width), -units)


def test_packed_code_reads_zero_as_minus_one():
    assert encode_signs(np.array([0.0, 2.0, -1.0])) == 0b010


def test_sign_code_bit_k_is_plus_one_at_k():
    signs = -np.ones(UNIT_3X3, dtype=np.int8)
    signs[2] = 1
    assert encode_signs(signs) == 1 << 2


# --------------------------------------------------------------------------
# The dataclass
# --------------------------------------------------------------------------


def test_constants():
    assert (UNIT_3X3, UNIT_1X1, MAX_TAU_3X3, MAX_TAU_1X1) == (9, 8, 9, 8)


def test_properties_3x3():
    rng = np.random.default_rng(SEED)
    conv = SubBitConv(
        kernel_size=3,
        tau=BN_TAU,
        codebook=random_codebook(rng, 1 << BN_TAU, UNIT_3X3, False),
        indices=rng.integers(0, 1 << BN_TAU, size=(4, 6)),
        alpha=np.ones(4),
    )
    assert conv.kernel_size == KERNEL_3X3
    assert (conv.out_channels, conv.in_channels, conv.num_units) == (4, 6, 6)
    assert conv.unit_size == UNIT_3X3
    assert conv.bits_per_weight == pytest.approx(5 / 9)
    assert conv.index_nbytes == 15  # ceil(4 * 6 * 5 / 8)
    assert conv.codebook_nbytes == 36  # ceil(32 * 9 / 8)
    assert conv.packed_nbytes == 51 == conv.packed().nbytes
    assert conv.weight_shape == (4, 6, 3, 3)


def test_properties_1x1():
    conv = SubBitConv(
        kernel_size=(1, 1),
        tau=3,
        codebook=decode_signs(np.arange(5), UNIT_1X1),
        indices=np.zeros((2, 3), dtype=np.int64),
        alpha=np.ones(2),
    )
    assert (conv.in_channels, conv.num_units, conv.unit_size) == (24, 3, UNIT_1X1)
    assert conv.bits_per_weight == pytest.approx(3 / 8)
    assert conv.weight_shape == (2, 24, 1, 1)


@pytest.mark.parametrize(
    ("padding", "expected"),
    [(1, (1, 1, 1, 1)), ((1, 2), (1, 2, 1, 2)), ((0, 1, 2, 3), (0, 1, 2, 3)), ([2, 0], (2, 0, 2, 0))],
)
def test_padding_is_normalized(padding, expected):
    assert make_conv(padding=padding).padding == expected


def test_geometry_is_normalized():
    conv = make_conv(stride=2, dilation=(1, 2))
    assert (conv.stride, conv.dilation) == ((2, 2), (1, 2))
    assert conv.output_hw(7, 7) == (3, 2)


def test_dtypes_and_read_only_copies():
    indices = np.array([[0, 1], [2, 3], [3, 3]])
    conv = make_conv(indices=indices)
    indices[0, 0] = 3
    assert conv.indices[0, 0] == 0
    assert (conv.codebook.dtype, conv.indices.dtype, conv.alpha.dtype) == (np.int8, np.int32, np.float32)
    with pytest.raises(ValueError):
        conv.alpha[0] = 1.0


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"kernel_size": (5, 5)}, "kernel_size"),
        ({"kernel_size": (3, 1)}, "kernel_size"),
        ({"tau": 0}, "tau"),
        ({"tau": 10}, "tau"),
        ({"tau": 2.0}, "tau"),
        ({"kernel_size": 1, "tau": 9}, r"tau must be an int in \[1, 8\]"),
        ({"codebook": np.ones((4, 8))}, r"codebook must have shape \[rows, 9\].*\(4, 8\)"),
        ({"codebook": decode_signs(np.arange(5), UNIT_3X3)}, r"rows <= 2\*\*tau = 4"),
        ({"codebook": np.zeros((4, 9))}, r"\+1 or -1"),
        ({"codebook": decode_signs(np.array([0, 7, 9, 7]), UNIT_3X3)}, "rows 1 and 3 are equal"),
        ({"indices": np.array([[0, 4], [0, 0], [0, 0]])}, r"indices\[0, 1\] = 4"),
        ({"indices": np.array([[0, -1], [0, 0], [0, 0]])}, r"indices\[0, 1\] = -1"),
        ({"indices": np.zeros((3, 2))}, "integer"),
        ({"indices": np.zeros(3, dtype=int)}, r"\[out_channels, units\]"),
        ({"alpha": np.ones(2)}, r"alpha must .* shape \(3,\).*\(2,\)"),
        ({"alpha": np.array([1.0, np.inf, 1.0])}, "alpha must be finite"),
        ({"bias": np.ones((3, 1))}, r"bias must .* shape \(3,\)"),
        ({"stride": 0}, "stride"),
        ({"dilation": (1, 2, 3)}, "dilation"),
        ({"padding": -1}, "padding"),
        ({"padding": (1, 2, 3)}, "padding"),
        ({"groups": 2}, "groups=2 is not supported"),
        ({"activation": "relu"}, "activation"),
        ({"in_channels": 3}, "in_channels=3"),
    ],
)
def test_constructor_rejects(overrides, match):
    with pytest.raises(FormatError, match=match):
        make_conv(**overrides)


def test_from_codes_infers_kernel_and_tau():
    conv = SubBitConv.from_codes(decode_signs(np.arange(5), UNIT_1X1), np.zeros((2, 1), dtype=int), np.ones(2))
    assert (conv.kernel_size, conv.tau, conv.in_channels) == (KERNEL_1X1, 3, 8)
    with pytest.raises(FormatError, match="rows, 9"):
        SubBitConv.from_codes(np.ones((2, 4)), np.zeros((2, 1), dtype=int), np.ones(2))


# --------------------------------------------------------------------------
# Dense weight layout
# --------------------------------------------------------------------------


def test_to_dense_3x3_is_row_major():
    conv = make_conv()
    dense = conv.to_dense()
    assert dense.dtype == np.float32 and dense.shape == (3, 2, 3, 3)
    expected = conv.alpha[1] * conv.codebook[conv.indices[1, 0]].reshape(3, 3)
    np.testing.assert_array_equal(dense[1, 0], expected)
    # Code 5 sets bits 0 and 2: taps (0, 0) and (0, 2) are +1.
    np.testing.assert_array_equal(dense[0, 1], 0.5 * np.array([[1, -1, 1], [-1, -1, -1], [-1, -1, -1]]))


def test_to_dense_1x1_unit_covers_eight_channels():
    codebook = decode_signs(np.array([0b00000001, 0b10000000]), UNIT_1X1)
    conv = SubBitConv(kernel_size=1, tau=1, codebook=codebook, indices=np.array([[0, 1]]), alpha=[2.0])
    dense = conv.to_dense()[0, :, 0, 0]
    expected = -2.0 * np.ones(16)
    expected[[0, 15]] = 2.0  # unit 0's element 0 and unit 1's element 7
    np.testing.assert_array_equal(dense, expected)


# --------------------------------------------------------------------------
# Packed form
# --------------------------------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None)
@given(conv=sub_bit_convs(max_tau=MAX_TAU_1X1))
def test_packed_round_trip(conv):
    packed = conv.packed()
    assert packed.index_bytes.size == packed_length(conv.indices.size, conv.tau)
    assert packed.nbytes == conv.packed_nbytes
    restored = SubBitConv.from_packed(packed)
    np.testing.assert_array_equal(restored.codebook, conv.codebook)
    np.testing.assert_array_equal(restored.indices, conv.indices)
    np.testing.assert_array_equal(restored.alpha, conv.alpha)
    if conv.bias is None:
        assert restored.bias is None
    else:
        np.testing.assert_array_equal(restored.bias, conv.bias)
    scalars = ("kernel_size", "tau", "stride", "padding", "dilation", "groups", "activation", "in_channels")
    assert [getattr(restored, name) for name in scalars] == [getattr(conv, name) for name in scalars]


def test_from_packed_rejects_other_version_and_truncation():
    packed = make_conv().packed()
    future = type(packed)(**{**vars(packed), "version": PACKED_FORMAT_VERSION + 1})
    with pytest.raises(FormatError, match="version"):
        SubBitConv.from_packed(future)
    truncated = type(packed)(**{**vars(packed), "index_bytes": packed.index_bytes[:-1]})
    with pytest.raises(FormatError, match="uint8 of shape"):
        SubBitConv.from_packed(truncated)


# --------------------------------------------------------------------------
# from_dense
# --------------------------------------------------------------------------


def check_dense_round_trip(conv: SubBitConv) -> SubBitConv:
    """from_dense(to_dense()) reproduces the weight and keeps the geometry."""
    recovered = SubBitConv.from_dense(
        conv.to_dense(),
        conv.bias,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        activation=conv.activation,
    )
    np.testing.assert_array_equal(recovered.to_dense(), conv.to_dense())
    codes = encode_signs(recovered.codebook)
    assert np.all(np.diff(codes) > 0), "codebook rows must be sorted by code"
    assert recovered.tau == max(1, math.ceil(math.log2(recovered.num_codewords)))
    assert (recovered.stride, recovered.padding, recovered.dilation) == (conv.stride, conv.padding, conv.dilation)
    assert recovered.activation == conv.activation
    return recovered


@settings(max_examples=EXAMPLES, deadline=None)
@given(conv=sub_bit_convs(max_tau=MAX_TAU_1X1))
def test_dense_round_trip(conv):
    recovered = check_dense_round_trip(conv)
    used = used_codes(conv)
    allowed = used | negated(used, conv.unit_size)
    assert set(encode_signs(recovered.codebook).tolist()) <= allowed
    np.testing.assert_array_equal(np.abs(recovered.alpha), np.abs(conv.alpha))


@settings(max_examples=EXAMPLES, deadline=None)
@given(conv=sub_bit_convs(max_tau=MAX_TAU_1X1, opposite_free=True))
def test_dense_round_trip_keeps_codebook_size(conv):
    recovered = check_dense_round_trip(conv)
    assert recovered.num_codewords == len(used_codes(conv))
    assert recovered.tau <= conv.tau


@settings(max_examples=EXAMPLES, deadline=None)
@given(conv=sub_bit_convs(max_tau=MAX_TAU_1X1, opposite_free=True, positive_alpha=True))
def test_dense_round_trip_recovers_codebook_and_alpha(conv):
    recovered = check_dense_round_trip(conv)
    assert set(encode_signs(recovered.codebook).tolist()) == used_codes(conv)
    np.testing.assert_array_equal(recovered.alpha, conv.alpha)
    np.testing.assert_array_equal(recovered.codebook[recovered.indices], conv.codebook[conv.indices])


def test_from_dense_bn_folded_negative_alphas():
    rng = np.random.default_rng(SEED)
    codebook = random_codebook(rng, 1 << BN_TAU, UNIT_3X3, opposite_free=True)
    indices = rng.integers(0, 1 << BN_TAU, size=(BN_OUT_CHANNELS, BN_IN_CHANNELS))
    weight = codebook[indices].reshape(BN_OUT_CHANNELS, BN_IN_CHANNELS, 3, 3).astype(np.float32)
    weight *= np.abs(rng.normal(size=BN_OUT_CHANNELS)).astype(np.float32)[:, None, None, None]
    gamma = rng.uniform(0.5, 1.5, size=BN_OUT_CHANNELS).astype(np.float32)
    gamma[list(BN_NEGATIVE_CHANNELS)] *= -1
    variance = rng.uniform(0.5, 2.0, size=BN_OUT_CHANNELS).astype(np.float32)
    scale = gamma / np.sqrt(variance + np.float32(BN_EPS))
    folded = weight * scale[:, None, None, None]

    conv = SubBitConv.from_dense(folded, tau=BN_TAU, padding=1)
    np.testing.assert_array_equal(conv.to_dense(), folded)
    assert conv.tau == BN_TAU
    assert set(encode_signs(conv.codebook).tolist()) == used_codes(
        SubBitConv(kernel_size=3, tau=BN_TAU, codebook=codebook, indices=indices, alpha=np.ones(BN_OUT_CHANNELS))
    )
    np.testing.assert_array_equal(np.flatnonzero(conv.alpha < 0), BN_NEGATIVE_CHANNELS)


def test_from_dense_zero_channels():
    conv = make_conv(alpha=np.array([0.0, -1.0, 0.0], dtype=np.float32))
    recovered = check_dense_round_trip(conv)
    np.testing.assert_array_equal(recovered.alpha[[0, 2]], [0.0, 0.0])
    np.testing.assert_array_equal(recovered.indices[[0, 2]], 0)


def test_from_dense_all_zero_weight():
    conv = SubBitConv.from_dense(np.zeros((2, 16, 1, 1)))
    assert (conv.num_codewords, conv.tau, conv.kernel_size) == (1, 1, KERNEL_1X1)
    np.testing.assert_array_equal(conv.codebook, np.ones((1, UNIT_1X1)))
    np.testing.assert_array_equal(conv.to_dense(), np.zeros((2, 16, 1, 1)))


def test_from_dense_keeps_given_larger_tau():
    conv = SubBitConv.from_dense(make_conv().to_dense(), tau=7)
    assert conv.tau == 7 and conv.bits_per_weight == pytest.approx(7 / 9)


def test_from_dense_tolerance():
    weight = make_conv().to_dense().astype(np.float64)
    weight[2, 1, 0, 0] *= 1 + 1e-7
    np.testing.assert_allclose(SubBitConv.from_dense(weight).to_dense(), weight, rtol=ROUNDTRIP_RTOL)
    weight[2, 1, 0, 0] *= 1 + 1e-3
    with pytest.raises(FormatError, match="output channel 2, unit 1 .input channel 1., element 0 "):
        SubBitConv.from_dense(weight)


def per_element_scales():
    weight = make_conv().to_dense()
    weight[1, 1, 2, 0] *= 3.0
    return weight


def zero_in_live_channel():
    weight = make_conv().to_dense()
    weight[0, 0, 1, 1] = 0.0
    return weight


def with_nan():
    weight = make_conv().to_dense()
    weight[0, 0, 0, 0] = np.nan
    return weight


def non_binary_1x1():
    weight = make_conv(kernel_size=1, tau=2, codebook=decode_signs(np.arange(4), UNIT_1X1)).to_dense()
    weight[0, 12, 0, 0] = 0.25
    return weight


@pytest.mark.parametrize(
    ("weight", "options", "match"),
    [
        (np.random.default_rng(SEED).normal(size=(4, 3, 3, 3)), {}, "output channel 0"),
        (per_element_scales(), {}, "output channel 1, unit 1 .input channel 1., element 6"),
        (zero_in_live_channel(), {}, "output channel 0, unit 0 .input channel 0., element 4"),
        (non_binary_1x1(), {}, r"output channel 0, unit 1 \(input channels 8..15\), element 4"),
        (with_nan(), {}, "non-finite"),
        (np.ones((2, 12, 1, 1)), {}, r"divisible by 8.*\(2, 12, 1, 1\)"),
        (np.ones((2, 3, 5, 5)), {}, r"kernel_size must be \(3, 3\) or \(1, 1\), got \(5, 5\)"),
        (np.ones((2, 3, 3)), {}, r"OIHW.*\(2, 3, 3\)"),
        (np.ones((0, 3, 3, 3)), {}, "non-empty"),
        (make_conv().to_dense(), {"tau": 1}, r"tau=1 is too small: the weight uses 3 distinct"),
        (make_conv().to_dense(), {"tau": 10}, "tau must be an int"),
        (make_conv().to_dense(), {"groups": 2}, "groups=2"),
        (make_conv().to_dense(), {"rtol": -1.0}, "rtol"),
    ],
)
def test_from_dense_rejects(weight, options, match):
    with pytest.raises(FormatError, match=match):
        SubBitConv.from_dense(weight, **options)
