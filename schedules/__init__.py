"""Sub-bit weight format, its NumPy reference, and the TensorIR kernels.

``schedules.subbit`` holds the one data model, :class:`SubBitConv`;
``schedules.reference`` defines what it computes. Both are pure NumPy, and
are what this package exports. The kernels are reached through
``schedules.kernels`` (pick a kernel and its plan, build, schedule).
"""

from schedules.reference import (
    accumulate_binary,
    apply_epilogue,
    binarize,
    conv2d_dense_reference,
    conv2d_reference,
    gather_accumulate,
    responses_binary,
    responses_float,
    unit_patches,
)
from schedules.subbit import (
    ACTIVATIONS,
    DENSE_ATOL,
    DENSE_RTOL,
    KERNEL_1X1,
    KERNEL_3X3,
    MAX_TAU,
    MAX_TAU_1X1,
    MAX_TAU_3X3,
    MIN_TAU,
    PACKED_FORMAT_VERSION,
    UNIT_1X1,
    UNIT_3X3,
    PackedSubBitConv,
    SubBitConv,
    as_padding,
    as_pair,
    conv_output_hw,
    decode_signs,
    encode_signs,
    pack_indices,
    packed_length,
    unpack_indices,
)

__all__ = [
    "ACTIVATIONS",
    "DENSE_ATOL",
    "DENSE_RTOL",
    "KERNEL_1X1",
    "KERNEL_3X3",
    "MAX_TAU",
    "MAX_TAU_1X1",
    "MAX_TAU_3X3",
    "MIN_TAU",
    "PACKED_FORMAT_VERSION",
    "UNIT_1X1",
    "UNIT_3X3",
    "PackedSubBitConv",
    "SubBitConv",
    "accumulate_binary",
    "apply_epilogue",
    "as_pair",
    "as_padding",
    "binarize",
    "conv2d_dense_reference",
    "conv2d_reference",
    "conv_output_hw",
    "decode_signs",
    "encode_signs",
    "gather_accumulate",
    "pack_indices",
    "packed_length",
    "responses_binary",
    "responses_float",
    "unit_patches",
    "unpack_indices",
]
