"""A BNN baseline kernel: 1-bit weights, 1-bit activations, XOR and popcount.

The honest peer for the binary-activation sub-bit path: the same conv
``y = alpha[o] * conv(b(x), B)`` with ``B`` any +-1 weight (a sub-bit
weight is one), computed the way BNN engines (daBNN, Riptide, LCE) do:

1. ``bnn_bits[n, w, h, x]``: input bits packed 32 channels to a word, bit
   ``b`` of word ``w`` set when channel ``32 w + b`` is negative
   (``b(x) = -1`` if ``x < 0`` else ``+1``, as in LCE); spare bits and the
   padding are 0;
2. ``bnn_acc[n, o, oh, ow] = sum over taps in the image, words w of
   (valid(w) - 2 popcount(bits ^ weight_bits))``: a tap that falls in the
   padding adds 0 (padding a +-1 tensor with -1 or +1 is the classic BNN
   bug), ``valid(w)`` counts the real channels of word ``w``;
3. ``bnn_out = alpha[o] * acc``.

Vectors run along output pixels (a row padded to whole vectors), so each
XOR takes one broadcast weight word against 16 pixels' words; the
accumulators of a block of channels x pixel vectors stay in registers.
"""

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import te, tirx, topi

from schedules.cpu import CpuSpec
from schedules.knobs import ACC_REGISTERS, BNN_CHANNEL_BLOCK, FLOAT_LANES
from schedules.plan import PLAN_ANNOTATION, Plan, divisors, plan_of
from schedules.schedule_helpers import largest_divisor
from schedules.subbit import as_padding, as_pair, conv_output_hw
from schedules.tir_build import FLOAT_DTYPE, INT_DTYPE, TIR_INDEX_DTYPE
from tvm_snn.errors import FormatError
from tvm_snn.schema import signs_to_code

WORD_BITS = 32
WORD_DTYPE = "uint32"
BNN_KIND = "bnn"
BNN_BLOCK_BITS = "bnn_bits"
BNN_BLOCK_ACC = "bnn_acc"
BNN_BLOCK_OUT = "bnn_out"


@dataclass(frozen=True)
class BinaryConv:
    """A conv with +-1 weights and per-channel scales: ``alpha[o] * signs[o, c, kh, kw]``.

    Attributes
    ----------
    signs : numpy.ndarray
        int8 ``[O, C, KH, KW]`` of -1 and +1.
    alpha : numpy.ndarray
        float32 ``[O]``.
    stride, padding : tuple of int
        ``(sh, sw)`` and ``(top, left, bottom, right)``.
    """

    signs: np.ndarray
    alpha: np.ndarray
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)

    @classmethod
    def from_dense(cls, weight, stride=1, padding=0):
        """Split a dense ``alpha[o] * B`` weight (``B`` in {-1, +1}) into signs and alpha.

        Raises
        ------
        FormatError
            The weight is not 4-D, or a channel is not one magnitude times +-1.
        """
        weight = np.asarray(weight, dtype=np.float32)
        if weight.ndim != 4:
            raise FormatError(f"a conv weight is [O, C, KH, KW], got shape {weight.shape}")
        alpha = np.abs(weight).reshape(weight.shape[0], -1).max(axis=1)
        signs = np.where(weight < 0, -1, 1).astype(np.int8)
        if not np.allclose(np.abs(weight), alpha[:, None, None, None], rtol=1e-6, atol=0):
            raise FormatError("the weight is not binary: a channel holds more than one magnitude")
        return cls(signs=signs, alpha=alpha.astype(np.float32), stride=as_pair(stride, "stride"), padding=as_padding(padding))

    @property
    def words(self):
        """32-bit words per pixel of packed input channels."""
        return -(-self.signs.shape[1] // WORD_BITS)

    def packed_weight(self):
        """uint32 ``[O, KH, KW, words]``: bit ``b`` of word ``w`` set when channel ``32 w + b`` is -1."""
        o, c, kh, kw = self.signs.shape
        signs = np.ones((o, kh, kw, self.words * WORD_BITS), dtype=np.int8)  # spare channels: bit 0
        signs[..., :c] = self.signs.transpose(0, 2, 3, 1)
        return signs_to_code(signs.reshape(o, kh, kw, self.words, WORD_BITS)).astype(np.uint32)


def binarize_lce(x):
    """``-1`` where ``x < 0``, else ``+1`` (int8): the BNN kernel's activation."""
    return np.where(np.asarray(x) < 0, -1, 1).astype(np.int8)


def bnn_reference(x, conv):
    """NumPy reference: ``alpha[o] * conv(binarize_lce(x), signs)`` with zero padding, float32."""
    b = binarize_lce(x).astype(np.int32)
    top, left, bottom, right = conv.padding
    b = np.pad(b, ((0, 0), (0, 0), (top, bottom), (left, right)))
    o, c, kh, kw = conv.signs.shape
    sh, sw = conv.stride
    oh, ow = conv_output_hw(x.shape[2:], (kh, kw), conv.stride, conv.padding, (1, 1))
    acc = np.zeros((x.shape[0], o, oh, ow), dtype=np.int64)
    w = conv.signs.astype(np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = b[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
            acc += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return (acc * conv.alpha[None, :, None, None].astype(np.float64)).astype(np.float32)


@dataclass(frozen=True)
class BnnPlan(Plan):
    """The knobs of the BNN kernel.

    Attributes
    ----------
    pixel_vectors : int
        Vectors of output pixels (16 each) per register block.
    channel_block : int
        Output channels per register block.
    num_cores : int
        Cores the rows (or, with few rows, the channel blocks) spread over.
    """

    KIND = BNN_KIND

    pixel_vectors: int
    channel_block: int
    num_cores: int

    @classmethod
    def default(cls, conv, data_shape, cpu):
        """The hand choices: ``BNN_CHANNEL_BLOCK`` channels' worth of pixel vectors, then channels."""
        vectors = _row(_out_hw(conv, data_shape)[1]) // FLOAT_LANES
        per_block = largest_divisor(vectors, ACC_REGISTERS // BNN_CHANNEL_BLOCK)
        block = largest_divisor(conv.signs.shape[0], ACC_REGISTERS // per_block)
        return cls(pixel_vectors=per_block, channel_block=block, num_cores=cpu.num_cores)

    @classmethod
    def space(cls, conv, data_shape, cpu):
        """``{knob: legal values}``: divisors of the row's vectors and of the channels."""
        vectors = _row(_out_hw(conv, data_shape)[1]) // FLOAT_LANES
        return {
            "pixel_vectors": divisors(vectors, ACC_REGISTERS),
            "channel_block": divisors(conv.signs.shape[0], ACC_REGISTERS),
            "num_cores": tuple(range(1, cpu.num_cores + 1)),
        }


def _out_hw(conv, data_shape):
    _, _, kh, kw = conv.signs.shape
    return conv_output_hw(tuple(data_shape[2:]), (kh, kw), conv.stride, conv.padding, (1, 1))


def _row(out_w):
    return -(-out_w // FLOAT_LANES) * FLOAT_LANES


def build_te(conv, data_shape, plan):
    """Define the BNN kernel in TE: placeholders (data, weight bits, alpha) and the output
    (which carries ``plan`` for :func:`schedule`)."""
    n_batch, channels, height, width = data_shape
    o, c, kh, kw = conv.signs.shape
    if channels != c:
        raise FormatError(f"input has {channels} channels, the conv takes {c}")
    out_h, out_w = _out_hw(conv, data_shape)
    row, words = _row(out_w), conv.words
    (sh, sw), (top, left, bottom, right) = conv.stride, conv.padding
    right = max(right, (row - 1) * sw + kw - width - left)
    data = te.placeholder(data_shape, FLOAT_DTYPE, "data")
    wbits = te.placeholder((o, kh, kw, words), WORD_DTYPE, "weight_bits")
    alpha = te.placeholder((o,), FLOAT_DTYPE, "alpha")
    padded = topi.nn.pad(data, [0, 0, top, left], [0, 0, bottom, right], pad_value=0.0, name="bnn_pad")
    hp, wp = height + top + bottom, width + left + right

    def pack(n, w, y, x):
        word = tirx.const(0, WORD_DTYPE)
        for b in range(WORD_BITS):
            ch = w * WORD_BITS + b
            negative = tirx.all(ch < c, padded[n, tirx.min(ch, c - 1), y, x] < 0)
            word = word | (negative.astype(WORD_DTYPE) << b)
        return word

    bits = te.compute((n_batch, words, hp, wp), pack, name=BNN_BLOCK_BITS)
    rw, ry, rx = te.reduce_axis((0, words), "w"), te.reduce_axis((0, kh), "ky"), te.reduce_axis((0, kw), "kx")

    def accumulate(n, oc, y, x):
        iy, ix = y * sh + ry, x * sw + rx
        inside = tirx.all(iy >= top, iy < top + height, ix >= left, ix < left + width)
        valid = tirx.min(WORD_BITS, c - rw * WORD_BITS).astype(INT_DTYPE)
        ones = tirx.popcount(bits[n, rw, iy, ix] ^ wbits[oc, ry, rx, rw]).astype(INT_DTYPE)
        return te.sum(tirx.Select(inside, valid - 2 * ones, tirx.const(0, INT_DTYPE)), axis=[ry, rx, rw])

    acc = te.compute((n_batch, o, out_h, row), accumulate, name=BNN_BLOCK_ACC)
    out = te.compute(
        (n_batch, o, out_h, out_w), lambda n, oc, y, x: acc[n, oc, y, x].astype(FLOAT_DTYPE) * alpha[oc],
        name=BNN_BLOCK_OUT,
        attrs={PLAN_ANNOTATION: plan.to_json()},
    )
    return [data, wbits, alpha, out]


def schedule(func):
    """CPU schedule: parallel rows, a block of channels x pixel vectors in registers
    (the knobs from the :class:`BnnPlan` on the output block)."""
    sch = tvm.s_tir.Schedule(func)
    plan = plan_of(sch, BNN_BLOCK_OUT, BnnPlan)
    acc = sch.get_sblock(BNN_BLOCK_ACC)
    n, o, y, x, ry, rx, rw = sch.get_loops(acc)
    n_out, _, out_h, row = (int(v.dom.extent) for v in sch.get(acc).iter_vars[:4])
    per_block, block = plan.pixel_vectors, plan.channel_block
    x_o, x_v, x_l = sch.split(x, [None, per_block, FLOAT_LANES])
    o_o, o_i = sch.split(o, [None, block])
    sch.reorder(n, y, x_o, o_o, ry, rx, rw, o_i, x_v, x_l)
    item = sch.fuse(n, y, x_o)
    out = sch.get_sblock(BNN_BLOCK_OUT)
    sch.reverse_compute_at(out, o_o, preserve_unit_loops=True)
    sch.unroll(o_i)
    sch.unroll(x_v)
    sch.vectorize(x_l)
    if n_out * out_h * (row // (per_block * FLOAT_LANES)) >= plan.num_cores:
        sch.parallel(item)
    else:
        sch.parallel(o_o)
    sch.decompose_reduction(acc, ry)
    bits = sch.get_sblock(BNN_BLOCK_BITS)
    sch.compute_inline(sch.get_sblock("bnn_pad"))
    b_loops = sch.get_loops(bits)
    if n_out * int(sch.get(bits).iter_vars[1].dom.extent) * int(sch.get(bits).iter_vars[2].dom.extent) > 1:
        fused = sch.fuse(*b_loops[:3])
        sch.parallel(fused)
    return sch.mod["main"]


def build_kernel(conv, data_shape, cpu=None, plan=None):
    """Build and schedule the BNN kernel for ``conv`` on NCHW inputs of ``data_shape``.

    Parameters
    ----------
    conv : BinaryConv
    data_shape : tuple of int
    cpu : CpuSpec, optional
        Default ``CpuSpec()``.
    plan : BnnPlan, optional
        Other knobs than :meth:`BnnPlan.default`, checked against its space.

    Returns
    -------
    tuple
        ``(func, constants, out_shape)``: the scheduled PrimFunc (arguments:
        data, weight bits, alpha, output), its constant arguments and the
        output shape.
    """
    if not isinstance(conv, BinaryConv):
        raise TypeError(f"expected a BinaryConv, got {type(conv).__name__}")
    cpu = cpu or CpuSpec()
    shape = tuple(int(d) for d in data_shape)
    if shape[1] != conv.signs.shape[1]:
        raise FormatError(f"input has {shape[1]} channels, the conv takes {conv.signs.shape[1]}")
    plan = BnnPlan.default(conv, shape, cpu) if plan is None else plan.validate(conv, shape, cpu)
    args = build_te(conv, shape, plan)
    func = schedule(te.create_prim_func(args, index_dtype_override=TIR_INDEX_DTYPE))
    constants = (conv.packed_weight(), np.ascontiguousarray(conv.alpha, dtype=np.float32))
    return func, constants, tuple(int(d) for d in args[-1].shape)
