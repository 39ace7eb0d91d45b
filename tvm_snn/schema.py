"""The contract between the training frontend and the compiler.

One place for the facts both sides must agree on: the size of a unit, the
supported kernels, the range of ``tau``, the metadata keys and schema version
an export carries, and the storage units the reports count in.

This module imports nothing, so every layer (``schedules``, ``relay_passes``,
``tvm_snn.train``) may import it, like :mod:`tvm_snn.errors`.
"""

UNIT_3X3 = 9
"""Signs per unit of a 3x3 conv: one 3x3 kernel, row-major (``kh * 3 + kw``)."""

UNIT_1X1 = 8
"""Signs per unit of a 1x1 conv: 8 consecutive input channels."""

KERNEL_3X3 = (3, 3)
"""Kernel size ``(kh, kw)`` of a 3x3 conv."""

KERNEL_1X1 = (1, 1)
"""Kernel size ``(kh, kw)`` of a 1x1 conv."""

MIN_TAU = 1
"""Fewest bits per unit index."""

MAX_TAU_3X3 = UNIT_3X3
"""Most bits per 3x3 index: the codebook then holds every 3x3 unit."""

MAX_TAU_1X1 = UNIT_1X1
"""Most bits per 1x1 index: the codebook then holds every 1x1 unit."""

MAX_TAU = max(MAX_TAU_3X3, MAX_TAU_1X1)
"""Most bits per index of any kernel."""

SCHEMA_KEY = "tvm_snn.schema"
"""Metadata key of the export schema version (a decimal string)."""

SCHEMA_VERSION = 1
"""The export schema version this code writes and reads."""

LAYERS_KEY = "tvm_snn.layers"
"""Metadata key of the JSON list of sub-bit conv layers."""

BITS_PER_BYTE = 8
"""Bits in one byte."""

BITS_PER_MBIT = 1e6
"""Bits in one megabit (decimal), the unit of reported model sizes."""

FLOAT_BITS = 32
"""Bits of one float32 weight."""

FLOAT_BYTES = FLOAT_BITS // BITS_PER_BYTE
"""Bytes of one float32 weight."""
