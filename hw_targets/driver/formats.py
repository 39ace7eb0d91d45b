"""DRAM byte images of a program's regions: what a board's buffers hold.

The simulator holds each region as a NumPy array of elements; the accelerator
reads bytes, in each region kind's DRAM format (little-endian, element ``n``
at bits ``n * bits ..``):

- ``ternary``: 2 bits, ``00`` for 0, ``01`` for +1, ``11`` for -1;
- ``index``: tau bits (:func:`schedules.subbit.pack_indices`);
- ``sign``: 1 bit, set for -1 (the project's sign convention);
- ``float32``: IEEE binary32.
"""

from __future__ import annotations

import numpy as np

from hw_targets.program import Region
from schedules.subbit import pack_indices, unpack_indices
from tvm_snn.errors import FpgaError

__all__ = ["pack_region", "unpack_region"]

_TERNARY_CODES = {0: 0b00, 1: 0b01, -1: 0b11}
_TERNARY_PER_BYTE = 4


def pack_region(region: Region, values) -> bytes:
    """The DRAM bytes of ``values`` (the region's elements)."""
    data = np.asarray(values).reshape(-1)
    if data.size != region.size:
        raise FpgaError(f"region '{region.name}' holds {region.size} elements, got {data.size}")
    if region.kind == "float32":
        return data.astype("<f4").tobytes()
    if region.kind == "index":
        return pack_indices(data, region.bits).tobytes()
    if region.kind == "sign":
        if not np.isin(data, (-1, 1)).all():
            raise FpgaError(f"region '{region.name}' holds signs, which are -1 or +1")
        return np.packbits(data < 0, bitorder="little").tobytes()
    if not np.isin(data, (-1, 0, 1)).all():
        raise FpgaError(f"region '{region.name}' is ternary: -1, 0 or +1")
    codes = np.zeros(-(-data.size // _TERNARY_PER_BYTE) * _TERNARY_PER_BYTE, dtype=np.uint8)
    codes[: data.size] = np.where(
        data < 0, _TERNARY_CODES[-1], np.where(data > 0, _TERNARY_CODES[1], 0)
    )
    quads = codes.reshape(-1, _TERNARY_PER_BYTE)
    return (
        (quads[:, 0] | quads[:, 1] << 2 | quads[:, 2] << 4 | quads[:, 3] << 6)
        .astype(np.uint8)
        .tobytes()
    )


def unpack_region(region: Region, data: bytes) -> np.ndarray:
    """Inverse of :func:`pack_region`: the region's elements, in the simulator's dtype."""
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    if raw.size != region.nbytes:
        raise FpgaError(f"region '{region.name}' takes {region.nbytes} bytes, got {raw.size}")
    if region.kind == "float32":
        return raw.view("<f4").astype(np.float32)
    if region.kind == "index":
        return unpack_indices(raw, region.bits, region.size)
    if region.kind == "sign":
        bits = np.unpackbits(raw, bitorder="little")[: region.size]
        return np.where(bits == 1, -1, 1).astype(np.int8)
    codes = np.stack([(raw >> shift) & 0b11 for shift in (0, 2, 4, 6)], axis=1).reshape(-1)[
        : region.size
    ]
    if (codes == 0b10).any():
        raise FpgaError(f"region '{region.name}' holds the unused ternary code 0b10")
    return np.where(
        codes == _TERNARY_CODES[-1], -1, np.where(codes == _TERNARY_CODES[1], 1, 0)
    ).astype(np.int8)
