"""``summary``: bits per weight, parameter memory and Bit-OPs per layer.

The counting follows the SNN paper's ResNet-18 table (see the project's
``snn_method.md``, sections 2 and 3):

- parameters: only the binary / sub-bit convs count, at ``tau / unit`` bits per
  weight (codebooks and full-precision layers are excluded); 1 Mbit = 10**6 bits;
- Bit-OPs of a sub-bit conv with output size ``H x W`` (W1A1 counting):

  - BNN: ``H * W * C_out * (C_in / groups) * kh * kw``;
  - SNN: ``H * W * U_in * 2**tau * unit + 1/2 * H * W * C_out * U_out``, where
    ``U_in`` is the number of input units (``C_in`` for 3x3, ``C_in / 8`` for 1x1)
    and ``U_out`` the units per output channel (the same, when ``groups == 1``):
    precompute every input unit against every subset kernel, then one
    half-weighted gather-add per output unit;
  - the layer's count is ``min(BNN, SNN)``: a layer takes the cheaper path.

Full-precision convs and linears are listed with ``counted=False`` and do not
enter the totals.
"""

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from tvm_snn.schema import BITS_PER_MBIT, FLOAT_BITS
from tvm_snn.train.layers import SNNConv2d
from tvm_snn.train.prepare import META_ATTR

OPS_PER_GOP = 1e9
"""Operations in one G(Bit-OPs)."""

GATHER_ADD_COST = 0.5
"""A gather-add counts as half a Bit-OP (fitted to the paper's table)."""

BINARY_BITS = 1
"""Bits per weight of a plain binary layer (the BNN reference)."""

IMAGE_DIMS = 3
"""``(C, H, W)``: an ``input_size`` of this length gets a batch dimension of 1."""


@dataclass(frozen=True)
class LayerSummary:
    """One row of :class:`ModelSummary`.

    Attributes
    ----------
    name : str
        The module's qualified name.
    kind : str
        ``"snn"`` (sub-bit or binary conv, counted) or ``"float"``.
    kernel : str
        ``"3x3"``, ``"1x1"``, ..., or ``"linear"``.
    tau : int or None
        Bits per unit of a sub-bit conv.
    bits_per_weight : float
        ``tau / unit``, or ``FLOAT_BITS``.
    weights : int
        Number of weights.
    params_mbit : float
        ``weights * bits_per_weight / 10**6``.
    output_size : tuple of int
        ``(H, W)`` of the output (``(1, 1)`` for a linear).
    bnn_bitops, snn_bitops, bitops : float or None
        Bit-OPs of the BNN and SNN paths, and their minimum (sub-bit convs only).
    counted : bool
        Whether the row enters the totals.
    """

    name: str
    kind: str
    kernel: str
    tau: int | None
    bits_per_weight: float
    weights: int
    params_mbit: float
    output_size: tuple
    bnn_bitops: float | None
    snn_bitops: float | None
    bitops: float | None
    counted: bool


@dataclass(frozen=True)
class ModelSummary:
    """Per-layer figures and totals of a model; ``str()`` gives a table."""

    layers: tuple

    @property
    def counted(self):
        """The rows that enter the totals."""
        return [row for row in self.layers if row.counted]

    @property
    def params_mbit(self):
        """Total sub-bit parameter memory in Mbit."""
        return sum(row.params_mbit for row in self.counted)

    @property
    def bnn_params_mbit(self):
        """The same layers at 1 bit per weight."""
        return sum(row.weights * BINARY_BITS for row in self.counted) / BITS_PER_MBIT

    @property
    def bitops(self):
        """Total Bit-OPs."""
        return sum(row.bitops for row in self.counted)

    @property
    def bnn_bitops(self):
        """Total Bit-OPs of the same layers as plain BNN layers."""
        return sum(row.bnn_bitops for row in self.counted)

    @property
    def params_reduction(self):
        """BNN parameter memory over SNN parameter memory."""
        return self.bnn_params_mbit / self.params_mbit if self.params_mbit else float("nan")

    @property
    def bitops_reduction(self):
        """BNN Bit-OPs over SNN Bit-OPs."""
        return self.bnn_bitops / self.bitops if self.bitops else float("nan")

    def table(self):
        """Return a text table of the rows and totals."""
        header = f"{'layer':<32} {'kernel':>6} {'tau':>4} {'bits/w':>7} {'Mbit':>9} {'GBitOPs':>9} {'vs BNN':>7}"
        lines = [header, "-" * len(header)]
        for row in self.layers:
            tau = "-" if row.tau is None else str(row.tau)
            mbit = f"{row.params_mbit:9.4f}" if row.counted else f"{'(fp)':>9}"
            if row.bitops is None:
                ops, ratio = f"{'-':>9}", f"{'-':>7}"
            else:
                ops = f"{row.bitops / OPS_PER_GOP:9.4f}"
                ratio = f"{row.bnn_bitops / row.bitops:6.2f}x"
            lines.append(
                f"{row.name:<32} {row.kernel:>6} {tau:>4} {row.bits_per_weight:7.3f} {mbit} {ops} {ratio}"
            )
        lines.append("-" * len(header))
        lines.append(
            f"total: {self.params_mbit:.4f} Mbit ({self.params_reduction:.2f}x smaller than BNN), "
            f"{self.bitops / OPS_PER_GOP:.4f} G Bit-OPs ({self.bitops_reduction:.2f}x fewer than BNN)"
        )
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _conv_row(name, conv, output, tau, unit):
    height, width = output.shape[-2:]
    kh, kw = conv.kernel_size
    weights = conv.weight.numel()
    kernel = f"{kh}x{kw}"
    if tau is None:
        return LayerSummary(
            name,
            "float",
            kernel,
            None,
            FLOAT_BITS,
            weights,
            weights * FLOAT_BITS / BITS_PER_MBIT,
            (height, width),
            None,
            None,
            None,
            False,
        )
    positions = height * width
    in_per_group = conv.in_channels // conv.groups
    bnn = positions * conv.out_channels * in_per_group * kh * kw
    units_in = conv.in_channels * kh * kw // unit
    units_out = in_per_group * kh * kw // unit
    snn = (
        positions * units_in * (1 << tau) * unit
        + GATHER_ADD_COST * positions * conv.out_channels * units_out
    )
    bits = tau / unit
    return LayerSummary(
        name,
        "snn",
        kernel,
        tau,
        bits,
        weights,
        weights * bits / BITS_PER_MBIT,
        (height, width),
        bnn,
        snn,
        min(bnn, snn),
        True,
    )


def _snn_conv_row(name, layer, output):
    return _conv_row(name, layer, output, layer.tau, layer.unit)


def _float_conv_row(name, conv, output):
    meta = getattr(conv, META_ATTR, None)
    if meta is not None:
        return _conv_row(name, conv, output, meta.tau, meta.unit)
    return _conv_row(name, conv, output, None, None)


def _linear_row(name, linear, output):
    weights = linear.weight.numel()
    return LayerSummary(
        name,
        "float",
        "linear",
        None,
        FLOAT_BITS,
        weights,
        weights * FLOAT_BITS / BITS_PER_MBIT,
        (1, 1),
        None,
        None,
        None,
        False,
    )


ROW_REGISTRY = {SNNConv2d: _snn_conv_row, nn.Conv2d: _float_conv_row, nn.Linear: _linear_row}
"""``type -> fn(name, module, output) -> LayerSummary``."""


@contextlib.contextmanager
def _eval_mode(model):
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.train(mode)


def summary(model, input_size):
    """Run ``model`` once on zeros and report bits, memory and Bit-OPs per layer.

    The model runs in eval mode under ``torch.no_grad`` (so no refinement step
    is counted) and its modes are restored afterwards.

    Parameters
    ----------
    model : torch.nn.Module
        A prepared (or converted) model.
    input_size : tuple of int
        ``(N, C, H, W)``, or ``(C, H, W)`` for a batch of one.

    Returns
    -------
    ModelSummary
    """
    size = tuple(input_size)
    if len(size) == IMAGE_DIMS:
        size = (1, *size)
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else None
    dtype = reference.dtype if reference is not None else None
    outputs = {}
    handles = []

    def hook_for(name):
        def hook(module, inputs, output):
            outputs.setdefault(name, output)

        return hook

    for name, module in model.named_modules():
        if type(module) in ROW_REGISTRY:
            handles.append(module.register_forward_hook(hook_for(name)))
    try:
        with _eval_mode(model), torch.no_grad():
            model(torch.zeros(size, device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
    rows = [
        ROW_REGISTRY[type(module)](name, module, outputs[name])
        for name, module in model.named_modules()
        if name in outputs
    ]
    return ModelSummary(tuple(rows))
