"""``SNNConv2d``: a drop-in ``nn.Conv2d`` with sub-bit weights."""

import torch
from torch import nn

from tvm_snn.schema import KERNEL_1X1
from tvm_snn.train.quantizers import (
    ACTIVATION_ESTIMATORS,
    DEFAULT_ACT_ESTIMATOR,
    DEFAULT_REFINE_PERIOD,
    DEFAULT_SAMPLING,
    DEFAULT_WEIGHT_ESTIMATOR,
    BinaryActivation,
    SubsetWeightQuantizer,
)
from tvm_snn.train.subset import unit_size
from tvm_snn.train.validate import check_bool, check_choice

DEFAULT_TAU_3X3 = 5
"""Default bits per 3x3 kernel: 5/9 = 0.56 bit per weight (the paper's headline)."""

DEFAULT_TAU_1X1 = 4
"""Default bits per 8-channel 1x1 unit: 4/8 = 0.5 bit per weight."""


def conv_arguments(conv):
    """The positional ``nn.Conv2d`` arguments that rebuild ``conv``: channels and kernel."""
    return conv.in_channels, conv.out_channels, conv.kernel_size


def conv_keywords(conv):
    """The keyword ``nn.Conv2d`` arguments that rebuild ``conv`` (geometry, bias, device, dtype)."""
    return {
        "stride": conv.stride,
        "padding": conv.padding,
        "dilation": conv.dilation,
        "groups": conv.groups,
        "bias": conv.bias is not None,
        "padding_mode": conv.padding_mode,
        "device": conv.weight.device,
        "dtype": conv.weight.dtype,
    }


class SNNConv2d(nn.Conv2d):
    """A 2-D convolution whose weights are a Sub-bit Neural Network layer.

    It accepts every ``nn.Conv2d`` argument, plus keyword-only SNN options. The
    forward pass computes ``conv(input_quantizer(x), weight_quantizer(weight))``:

    - ``weight_quantizer`` (:class:`~tvm_snn.train.quantizers.SubsetWeightQuantizer`)
      maps each unit of the weight (a 3x3 kernel, or 8 consecutive input channels
      of a 1x1 kernel) to its nearest kernel of a layer-specific subset of
      ``2**tau`` binary kernels, scaled per output channel by ``alpha = mean|w|``;
    - ``input_quantizer`` is a :class:`~tvm_snn.train.quantizers.BinaryActivation`
      with ``binary_act=True``, else ``nn.Identity``.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, \
padding_mode, device, dtype
        As ``nn.Conv2d``. ``kernel_size`` must be 3x3 or 1x1; for 1x1,
        ``in_channels / groups`` must be a multiple of 8.
    tau : int, optional
        Bits per unit: ``1 <= tau < 9`` for 3x3 and ``1 <= tau < 8`` for 1x1.
        ``tau = 9`` (3x3) or ``8`` (1x1) is the full set: plain binary weights,
        the "BNN 1 bit" baseline. Default: ``DEFAULT_TAU_3X3`` or ``DEFAULT_TAU_1X1``.
    binary_act : bool
        Binarize the input with ``sign`` (W1A1); else float inputs (W1A32).
    act_estimator : {"approxsign", "ste", "ede"}
        The activation sign's backward pass.
    weight_estimator : {"ste", "ede"}
        The weight sign's backward pass.
    ir_net_balance, ir_net_standardize : bool
        IR-Net's weight balance and standardization before projection.
    refine : bool
        Learn the subset (SNN); ``False`` keeps the sampled one (Vanilla-SNN).
    refine_period : int
        Refinement runs every ``refine_period`` training steps.
    sampling : {"random", "frequent"}
        How the initial subset is drawn.
    seed : int
        Seed of the subset sampling and refills.

    Raises
    ------
    tvm_snn.errors.ConfigError
        On an unsupported kernel, an indivisible 1x1 ``in_channels``, or a bad option.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        padding_mode="zeros",
        device=None,
        dtype=None,
        *,
        tau=None,
        binary_act=False,
        act_estimator=DEFAULT_ACT_ESTIMATOR,
        weight_estimator=DEFAULT_WEIGHT_ESTIMATOR,
        ir_net_balance=False,
        ir_net_standardize=False,
        refine=True,
        refine_period=DEFAULT_REFINE_PERIOD,
        sampling=DEFAULT_SAMPLING,
        seed=0,
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )
        where = self._describe()
        unit_size(self.kernel_size)
        if tau is None:
            tau = DEFAULT_TAU_1X1 if tuple(self.kernel_size) == KERNEL_1X1 else DEFAULT_TAU_3X3
        check_bool("binary_act", binary_act, where)
        check_choice("act_estimator", act_estimator, ACTIVATION_ESTIMATORS, where)
        self.weight_quantizer = SubsetWeightQuantizer(
            self.weight,
            tau,
            estimator=weight_estimator,
            balance=ir_net_balance,
            standardize=ir_net_standardize,
            refine=refine,
            refine_period=refine_period,
            sampling=sampling,
            seed=seed,
            where=where,
        )
        if binary_act:
            self.input_quantizer = BinaryActivation(act_estimator)
        else:
            self.input_quantizer = nn.Identity()

    def _describe(self):
        return (
            f"SNNConv2d({self.in_channels}, {self.out_channels}, "
            f"kernel_size={tuple(self.kernel_size)}, groups={self.groups})"
        )

    @property
    def tau(self):
        """Bits per unit."""
        return self.weight_quantizer.tau

    @property
    def unit(self):
        """Signs per unit: 9 (3x3) or 8 (1x1)."""
        return self.weight_quantizer.unit

    @property
    def bits_per_weight(self):
        """``tau / unit``."""
        return self.weight_quantizer.bits_per_weight

    @property
    def binary_act(self):
        """Whether the input is binarized."""
        return isinstance(self.input_quantizer, BinaryActivation)

    @classmethod
    def from_conv(cls, conv, **options):
        """Build an ``SNNConv2d`` from an ``nn.Conv2d``, copying its weight and bias.

        The subset is sampled after the copy, so ``sampling="frequent"`` sees the
        trained weights.

        Parameters
        ----------
        conv : torch.nn.Conv2d
            The layer to replace.
        **options
            The keyword-only SNN options of :class:`SNNConv2d`.

        Returns
        -------
        SNNConv2d
        """
        layer = cls(*conv_arguments(conv), **conv_keywords(conv), **options)
        with torch.no_grad():
            layer.weight.copy_(conv.weight)
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        layer.weight_quantizer.reset(layer.weight)
        layer.train(conv.training)
        return layer

    def effective_weight(self):
        """Return the projected weight ``alpha[o] * codebook[idx]`` (detached)."""
        return self.weight_quantizer.effective_weight(self.weight)

    def forward(self, x):
        """Convolve the (binarized) input with the projected weight."""
        return self._conv_forward(
            self.input_quantizer(x), self.weight_quantizer(self.weight), self.bias
        )
