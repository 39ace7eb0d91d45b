"""The binary kernel table, kernel codes, subset sampling and de-duplication.

A *unit* is the group of weights that one τ-bit index replaces:

- for a 3x3 conv, one 3x3 kernel (``UNIT_3X3 = 9`` signs);
- for a 1x1 conv, 8 consecutive input channels (``UNIT_1X1 = 8`` signs).

The full table holds all ``2**unit`` sign patterns. Row ``code`` of the table has
element ``b`` equal to +1 when bit ``unit - 1 - b`` of ``code`` is set, -1 otherwise
(the first element is the most significant bit). :func:`kernel_codes` is its inverse.
That row order fixes which kernels a seed samples, so it is kept as is: in the sign
code of :mod:`tvm_snn.schema` (-1 is bit 1, element ``e`` is bit ``e``), row ``code``
is the unit whose reversed elements have the code ``negate_code(code, unit)``.

Everything here is a pure function of tensors; randomness comes only from the
``torch.Generator`` passed in, so sampling is reproducible.
"""

import hashlib

import torch

from tvm_snn.errors import ConfigError
from tvm_snn.schema import (
    KERNEL_1X1,
    KERNEL_3X3,
    UNIT_1X1,
    UNIT_3X3,
    element_sign,
    negate_code,
    signs_to_code,
)
from tvm_snn.schema import MIN_TAU as MIN_TAU  # re-exported for tvm_snn.train.validate

UNIT_BY_KERNEL = {KERNEL_3X3: UNIT_3X3, KERNEL_1X1: UNIT_1X1}
"""Unit size per supported kernel size."""

NEAREST_CHUNK_ELEMENTS = 1 << 22
"""Score-matrix elements per chunk in :func:`nearest` (bounds its memory)."""

SEED_BITS = 63
"""Derived seeds are non-negative int64 values below ``2**SEED_BITS``."""


def unit_size(kernel_size):
    """Return the unit size for a kernel size.

    Parameters
    ----------
    kernel_size : tuple of int
        ``(kh, kw)``.

    Returns
    -------
    int
        ``UNIT_3X3`` or ``UNIT_1X1``.

    Raises
    ------
    ConfigError
        If the kernel size is neither 3x3 nor 1x1.
    """
    key = tuple(kernel_size)
    if key not in UNIT_BY_KERNEL:
        raise ConfigError(
            f"kernel_size {key} is not supported by sub-bit convs; only 3x3 and 1x1 are"
        )
    return UNIT_BY_KERNEL[key]


def all_kernels(unit, dtype=torch.float32, device=None):
    """Return the full table of ``2**unit`` sign patterns.

    Parameters
    ----------
    unit : int
        Signs per pattern.
    dtype : torch.dtype, optional
        Element type of the result.
    device : torch.device, optional
        Device of the result.

    Returns
    -------
    torch.Tensor
        ``[2**unit, unit]`` of +1/-1, row ``code`` as described in the module docstring.
    """
    codes = torch.arange(1 << unit, device=device)
    reversed_positions = torch.arange(unit - 1, -1, -1, device=device)
    return element_sign(negate_code(codes, unit)[:, None], reversed_positions[None, :]).to(dtype)


def kernel_codes(signs):
    """Return the table code of each row of signs.

    Parameters
    ----------
    signs : torch.Tensor
        ``[n, unit]``; an element ``>= 0`` counts as +1, ``< 0`` as -1.

    Returns
    -------
    torch.Tensor
        int64 ``[n]``: the row of :func:`all_kernels` with the same sign pattern.
    """
    return negate_code(signs_to_code(signs.flip(-1)), signs.shape[-1])


def derive_seed(seed, *keys):
    """Derive a reproducible per-layer (or per-step) seed.

    Parameters
    ----------
    seed : int
        The base seed.
    *keys : object
        Anything with a stable ``str``: a layer name, a step number.

    Returns
    -------
    int
        A non-negative seed below ``2**SEED_BITS``; stable across processes.
    """
    text = ":".join(str(part) for part in (seed, *keys))
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << SEED_BITS) - 1)


def make_generator(seed):
    """Return a CPU ``torch.Generator`` seeded with ``seed``."""
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator


def sample_random(unit, tau, generator):
    """Sample ``2**tau`` distinct codes uniformly, without replacement.

    Parameters
    ----------
    unit : int
        Signs per pattern; the full set has ``2**unit`` codes.
    tau : int
        Bits per unit.
    generator : torch.Generator
        The source of randomness.

    Returns
    -------
    torch.Tensor
        Sorted int64 ``[2**tau]``.
    """
    perm = torch.randperm(1 << unit, generator=generator)
    return perm[: 1 << tau].sort().values


def sample_frequent(units, tau):
    """Pick the ``2**tau`` most frequent nearest kernels of the given units.

    This is the supplementary's "Baseline B". The nearest kernel of a real unit in
    the full set is its sign pattern (zero counts as +1). Ties in frequency go to
    the smaller code.

    Parameters
    ----------
    units : torch.Tensor
        ``[n, unit]`` real weights.
    tau : int
        Bits per unit.

    Returns
    -------
    torch.Tensor
        Sorted int64 ``[2**tau]``.
    """
    unit = units.shape[-1]
    counts = torch.bincount(kernel_codes(units).cpu(), minlength=1 << unit)
    order = torch.argsort(-counts, stable=True)
    return order[: 1 << tau].sort().values


def nearest(units, codebook):
    """Return the index of the nearest codebook row for each unit.

    For ±1 rows of equal norm, minimum L2 distance is maximum inner product,
    which is what is computed (in chunks, to bound memory). Ties go to the
    first row.

    Parameters
    ----------
    units : torch.Tensor
        ``[n, unit]`` real weights.
    codebook : torch.Tensor
        ``[k, unit]`` of +1/-1.

    Returns
    -------
    torch.Tensor
        int64 ``[n]`` in ``[0, k)``.
    """
    rows = max(1, NEAREST_CHUNK_ELEMENTS // codebook.shape[0])
    codebook_t = codebook.to(units.dtype).t()
    parts = [(chunk @ codebook_t).argmax(dim=1) for chunk in units.split(rows)]
    if not parts:
        return torch.zeros(0, dtype=torch.long, device=units.device)
    return torch.cat(parts)


def duplicate_mask(codes):
    """Mark every code that already occurred in an earlier row.

    Parameters
    ----------
    codes : torch.Tensor
        int64 ``[k]``.

    Returns
    -------
    torch.Tensor
        bool ``[k]``; the first occurrence of each code is ``False``.
    """
    equal = codes[:, None] == codes[None, :]
    earlier = torch.ones_like(equal).tril(diagonal=-1)
    return (equal & earlier).any(dim=1)


def sample_missing(present, count, unit, generator):
    """Sample ``count`` distinct codes not in ``present``, uniformly.

    Parameters
    ----------
    present : torch.Tensor
        int64 codes to avoid.
    count : int
        How many codes to draw.
    unit : int
        Signs per pattern.
    generator : torch.Generator
        The source of randomness.

    Returns
    -------
    torch.Tensor
        int64 ``[count]``.

    Raises
    ------
    ConfigError
        If fewer than ``count`` codes are left.
    """
    free = torch.ones(1 << unit, dtype=torch.bool)
    free[present.cpu()] = False
    candidates = free.nonzero().flatten()
    if candidates.numel() < count:
        raise ConfigError(
            f"cannot refill {count} kernels: only {candidates.numel()} of {1 << unit} are free"
        )
    perm = torch.randperm(candidates.numel(), generator=generator)
    return candidates[perm[:count]]
