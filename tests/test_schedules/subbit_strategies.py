"""Hypothesis strategies that build random sub-bit convs and matching inputs."""

import numpy as np
from hypothesis import strategies as st

from schedules.subbit import KERNEL_1X1, KERNEL_3X3, UNIT_1X1, UNIT_3X3, SubBitConv

SEED_MAX = 2**32 - 1
MAX_UNITS = 4
MAX_OUT_CHANNELS = 5
MAX_BATCH = 2
EXTRA_SIZE = 4
ALPHA_RANGE = (0.1, 2.0)
ZERO_FRACTION = 0.1
STRIDES = (1, 2)
DILATIONS = (1, 2)
PADDINGS = (0, 1, (1, 0), (0, 1, 1, 2), (2, 1, 0, 1))
UNIT_OF_KERNEL = {KERNEL_3X3: UNIT_3X3, KERNEL_1X1: UNIT_1X1}


def random_codebook(rng, rows: int, unit: int, opposite_free: bool) -> np.ndarray:
    """``rows`` distinct +1/-1 units; with ``opposite_free`` no row is another's negation."""
    if opposite_free:
        half = 1 << (unit - 1)
        classes = rng.choice(half, size=rows, replace=False)
        flips = rng.integers(0, 2, size=rows)
        codes = np.where(flips == 1, classes ^ ((1 << unit) - 1), classes)
    else:
        codes = rng.choice(1 << unit, size=rows, replace=False)
    bits = (codes[:, None] >> np.arange(unit)) & 1
    return (2 * bits - 1).astype(np.int8)


def random_alpha(rng, size: int, positive: bool) -> np.ndarray:
    magnitude = rng.uniform(*ALPHA_RANGE, size=size)
    signs = np.ones(size) if positive else rng.choice((-1.0, 1.0), size=size)
    return (magnitude * signs).astype(np.float32)


@st.composite
def sub_bit_convs(
    draw,
    kernels=(KERNEL_3X3, KERNEL_1X1),
    max_tau: int = 4,
    activations=("float", "binary"),
    opposite_free: bool = False,
    positive_alpha: bool = False,
):
    """A random :class:`SubBitConv` with small shapes and any geometry."""
    kernel = draw(st.sampled_from(kernels))
    unit = UNIT_OF_KERNEL[kernel]
    tau = draw(st.integers(1, max_tau))
    # Without opposite rows at most half of all units are available.
    capacity = 1 << (unit - 1) if opposite_free else 1 << unit
    rows = draw(st.integers(1, min(1 << tau, capacity)))
    units = draw(st.integers(1, MAX_UNITS))
    out_channels = draw(st.integers(1, MAX_OUT_CHANNELS))
    rng = np.random.default_rng(draw(st.integers(0, SEED_MAX)))
    bias = rng.normal(size=out_channels).astype(np.float32) if draw(st.booleans()) else None
    return SubBitConv(
        kernel_size=kernel,
        tau=tau,
        codebook=random_codebook(rng, rows, unit, opposite_free),
        indices=rng.integers(0, rows, size=(out_channels, units)),
        alpha=random_alpha(rng, out_channels, positive_alpha),
        bias=bias,
        stride=draw(st.sampled_from(STRIDES)),
        padding=draw(st.sampled_from(PADDINGS)),
        dilation=draw(st.sampled_from(DILATIONS)),
        activation=draw(st.sampled_from(activations)),
    )


@st.composite
def inputs_for(draw, conv: SubBitConv) -> np.ndarray:
    """A random NCHW float32 input that the conv accepts, with some exact zeros."""
    top, left, bottom, right = conv.padding
    sizes = []
    for k, dilation, pads in zip(conv.kernel_size, conv.dilation, (top + bottom, left + right), strict=True):
        smallest = max(1, dilation * (k - 1) + 1 - pads)
        sizes.append(draw(st.integers(smallest, smallest + EXTRA_SIZE)))
    batch = draw(st.integers(1, MAX_BATCH))
    rng = np.random.default_rng(draw(st.integers(0, SEED_MAX)))
    x = rng.normal(size=(batch, conv.in_channels, *sizes)).astype(np.float32)
    x[rng.random(x.shape) < ZERO_FRACTION] = 0.0
    return x


@st.composite
def convs_with_inputs(draw, **conv_options):
    conv = draw(sub_bit_convs(**conv_options))
    return conv, draw(inputs_for(conv))


ZERO_INPUT_FRACTION = 0.1


def make_conv(kernel, tau, in_channels, out_channels, seed, activation="float", bias=True, **geometry):
    """A random :class:`SubBitConv` with every unit drawn from a ``2**tau``-row codebook."""
    rng = np.random.default_rng(seed)
    unit = UNIT_OF_KERNEL[kernel]
    units = in_channels if kernel == KERNEL_3X3 else in_channels // UNIT_1X1
    codebook = random_codebook(rng, min(1 << tau, 1 << unit), unit, opposite_free=False)
    return SubBitConv(
        kernel_size=kernel,
        tau=tau,
        codebook=codebook,
        indices=rng.integers(0, len(codebook), (out_channels, units)),
        alpha=random_alpha(rng, out_channels, positive=False),
        bias=rng.normal(size=out_channels).astype(np.float32) if bias else None,
        activation=activation,
        **geometry,
    )


def make_input(shape, seed, activation):
    """A float NCHW input; for binary activations, ``sign`` of it with some exact zeros."""
    from schedules.reference import binarize

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    if activation == "binary":
        x[rng.random(shape) < ZERO_INPUT_FRACTION] = 0.0  # sign(0) = 0 must stay 0
        x = binarize(x).astype(np.float32)
    return x
