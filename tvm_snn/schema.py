"""The contract between the training frontend and the compiler.

One place for the facts both sides must agree on: the size of a unit, the
supported kernels, the range of ``tau``, how a unit's signs are written as bits,
the metadata keys and schema version an export carries, and the storage units
the reports count in.

The sign code
-------------
A unit of ``width`` signs is written as one integer: **a -1 sign is bit 1, a +1
sign is bit 0, and element ``e`` of the unit is bit ``e``** (least significant
first). An element ``< 0`` counts as -1, anything else (zero included) as +1,
so the code of ``sign(w)`` and of ``w`` agree with ``b(x) = -1 if x < 0 else +1``.
Negating a unit flips every bit (:func:`negate_code`). The kernels' segment
tables and the BNN baseline's packed words are such codes; the packed codebook
of :class:`schedules.subbit.PackedSubBitConv` stores the negated code, and the
frontend's kernel table lists the units in its own row order (both converted at
their edges, so stored data keeps its bits).

This module imports only the standard library and NumPy, no first-party module,
so every layer (``schedules``, ``relay_passes``, ``tvm_snn.train``) may import it,
like :mod:`tvm_snn.errors`.
"""

import json

import numpy as np

UNIT_3X3 = 9
"""Signs per unit of a 3x3 conv: one 3x3 kernel, row-major (``kh * 3 + kw``)."""

UNIT_1X1 = 8
"""Signs per unit of a 1x1 conv: 8 consecutive input channels."""

KERNEL_3X3 = (3, 3)
"""Kernel size ``(kh, kw)`` of a 3x3 conv."""

KERNEL_1X1 = (1, 1)
"""Kernel size ``(kh, kw)`` of a 1x1 conv."""

KERNEL_LABELS = {"3x3": KERNEL_3X3, "1x1": KERNEL_1X1}
"""The metadata's ``kernel`` strings and the kernel sizes they name."""

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

LAYER_INT_FIELDS = ("tau", "out_channels", "in_channels")
"""Fields of a layer entry that must be integers."""

BITS_PER_BYTE = 8
"""Bits in one byte."""

BITS_PER_MBIT = 1e6
"""Bits in one megabit (decimal), the unit of reported model sizes."""

FLOAT_BITS = 32
"""Bits of one float32 weight."""

FLOAT_BYTES = FLOAT_BITS // BITS_PER_BYTE
"""Bytes of one float32 weight."""


# --------------------------------------------------------------------------
# The sign code
# --------------------------------------------------------------------------


def signs_to_code(signs):
    """Return the sign code of each unit: bit ``e`` is set when element ``e`` is ``< 0``.

    Only operators are used, so this works on NumPy arrays and on torch
    tensors alike (on any device).

    Parameters
    ----------
    signs : numpy.ndarray or torch.Tensor
        ``[..., width]`` real values; an element ``< 0`` is -1, any other +1.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        int64 codes of shape ``[...]``, in ``[0, 2**width)``.
    """
    width = signs.shape[-1]
    return sum((signs[..., element] < 0) * (1 << element) for element in range(width))


def element_sign(codes, element):
    """Return the sign of element ``element`` under ``codes``: -1 where its bit is set, else +1.

    Only operators are used, so this works on ints, NumPy arrays, torch tensors
    and TIR expressions.

    Parameters
    ----------
    codes : int or array
        Sign codes.
    element : int or array
        Element positions; broadcast against ``codes``.

    Returns
    -------
    int or array
        +1 or -1, of the type of ``codes``.
    """
    return 1 - 2 * ((codes >> element) & 1)


def code_to_signs(codes, width):
    """Return the units of sign codes: the inverse of :func:`signs_to_code`.

    Parameters
    ----------
    codes : array_like of int
        Codes in ``[0, 2**width)``, any shape.
    width : int
        Signs per unit.

    Returns
    -------
    numpy.ndarray
        ``int8`` +1/-1 of shape ``[..., width]``.
    """
    positions = np.arange(width, dtype=np.int64)
    return element_sign(np.asarray(codes, dtype=np.int64)[..., None], positions).astype(np.int8)


def negate_code(codes, width):
    """Return the code of each negated unit: every one of the ``width`` bits flipped.

    Parameters
    ----------
    codes : int or array of int
        Sign codes in ``[0, 2**width)``.
    width : int
        Signs per unit.

    Returns
    -------
    int or array of int
        ``codes ^ (2**width - 1)``.
    """
    return codes ^ ((1 << width) - 1)


# --------------------------------------------------------------------------
# The export metadata
# --------------------------------------------------------------------------


def parse_layers_metadata(props):
    """Read the layer list of an export's metadata, and say what is wrong with it.

    Metadata that carries neither :data:`SCHEMA_KEY` nor :data:`LAYERS_KEY` is
    not a tvm-snn export (or predates it): that is not a problem. Every reader
    raises ``tvm_snn.errors.FormatError`` with the problem (this module imports
    no first-party module, so it does not raise it itself).

    Parameters
    ----------
    props : mapping of str to str
        The metadata: ONNX ``metadata_props`` as a dict, or ``.pt2`` extra files.

    Returns
    -------
    layers : list of dict or None
        One entry per sub-bit conv, in module order; None when there is no
        metadata or it has a problem.
    problem : str or None
        Why the metadata cannot be read: a missing or unsupported schema
        version, or a layer list that is missing, not JSON, or not a list of
        layer objects with a known ``kernel`` and integer sizes. None when fine.
    """
    if SCHEMA_KEY not in props and LAYERS_KEY not in props:
        return None, None
    version = props.get(SCHEMA_KEY)
    if version != str(SCHEMA_VERSION):
        found = "is missing" if version is None else f"is {version!r}"
        return None, (
            f"tvm-snn metadata: schema version ({SCHEMA_KEY!r}) {found}; "
            f"this reader supports version {SCHEMA_VERSION}"
        )
    if LAYERS_KEY not in props:
        return None, f"tvm-snn metadata: key {LAYERS_KEY!r} is missing (schema version {version})"
    try:
        layers = json.loads(props[LAYERS_KEY])
    except json.JSONDecodeError as err:
        return None, f"tvm-snn metadata: key {LAYERS_KEY!r} is corrupt JSON: {err}"
    if not isinstance(layers, list):
        return (
            None,
            f"tvm-snn metadata: key {LAYERS_KEY!r} must hold a JSON list, got {type(layers).__name__}",
        )
    for position, entry in enumerate(layers):
        problem = _layer_entry_problem(position, entry)
        if problem is not None:
            return None, problem
    return layers, None


def _layer_entry_problem(position, entry):
    """What is wrong with one layer entry (a kernel label, integer sizes), or None."""
    where = f"tvm-snn metadata: key {LAYERS_KEY!r}, entry {position}"
    if not isinstance(entry, dict):
        return f"{where} must be a JSON object, got {type(entry).__name__}"
    if entry.get("kernel") not in KERNEL_LABELS:
        return (
            f"{where}: kernel must be one of {sorted(KERNEL_LABELS)}, got {entry.get('kernel')!r}"
        )
    for name in LAYER_INT_FIELDS:
        value = entry.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{where}: {name} must be an integer, got {value!r}"
    return None
