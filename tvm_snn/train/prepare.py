"""``prepare`` swaps convs for sub-bit convs; ``convert`` freezes them for export.

Both walk the model once and look each module's exact type up in a registry
(torchao style), so a new layer type needs one registered function, not another
branch::

    model = prepare(model, SNNConfig(tau_3x3=5, binary_act=True))
    ...train...
    frozen = convert(model)       # plain nn.Conv2d (+ Sign) with projected weights
    snn_metadata(frozen)          # {fqn: SNNMeta(tau, codebook, indices, ...)}
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from tvm_snn.errors import ConfigError
from tvm_snn.train.config import SNNConfig
from tvm_snn.train.layers import SNNConv2d, conv_arguments, conv_keywords
from tvm_snn.train.quantizers import Sign
from tvm_snn.train.subset import KERNEL_1X1, UNIT_1X1, UNIT_BY_KERNEL, derive_seed

PREPARE_REGISTRY: dict[type, Callable] = {}
"""``type -> fn(module, fqn, config) -> replacement or None`` used by :func:`prepare`."""

CONVERT_REGISTRY: dict[type, Callable] = {}
"""``type -> fn(module) -> replacement`` used by :func:`convert`."""

META_ATTR = "snn_meta"
"""Name of the :class:`SNNMeta` attribute on frozen convs."""

ACTIVATION_BINARY = "binary"
ACTIVATION_FLOAT = "float"


def register_prepare(module_type):
    """Register ``fn(module, fqn, config)`` as the :func:`prepare` handler of a type."""

    def decorate(fn):
        PREPARE_REGISTRY[module_type] = fn
        return fn

    return decorate


def register_convert(module_type):
    """Register ``fn(module)`` as the :func:`convert` handler of a type."""

    def decorate(fn):
        CONVERT_REGISTRY[module_type] = fn
        return fn

    return decorate


@dataclass(frozen=True)
class SNNMeta:
    """What a frozen sub-bit conv was, for an exporter's metadata.

    Attributes
    ----------
    kernel : str
        ``"3x3"`` or ``"1x1"``.
    tau : int
        Bits per unit.
    unit : int
        Signs per unit (9 or 8).
    codebook : torch.Tensor
        int8 ``[2**tau, unit]`` of +1/-1.
    indices : torch.Tensor
        int64 ``[O, units per output channel]`` into ``codebook``.
    alpha : torch.Tensor
        float ``[O]`` per-output-channel scale.
    activation : str
        ``"binary"`` when the conv's input is ``sign(x)``, else ``"float"``.
    """

    kernel: str
    tau: int
    unit: int
    codebook: torch.Tensor
    indices: torch.Tensor
    alpha: torch.Tensor
    activation: str

    @property
    def bits_per_weight(self):
        """``tau / unit``."""
        return self.tau / self.unit


def is_supported_conv(conv):
    """Whether a conv can become an ``SNNConv2d``: 3x3, or 1x1 with C_in % 8 == 0; groups 1."""
    kernel = tuple(conv.kernel_size)
    if kernel not in UNIT_BY_KERNEL or conv.groups != 1:
        return False
    return kernel != KERNEL_1X1 or conv.in_channels % UNIT_1X1 == 0


def default_filter(model):
    """Return the default ``filter_fn(module, fqn)`` for ``model``.

    It selects every supported conv (:func:`is_supported_conv`) except the first
    ``nn.Conv2d`` in module order, which stays in full precision (the classifier,
    an ``nn.Linear``, is never touched).
    """
    first = next((fqn for fqn, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)

    def keep(module, fqn):
        return fqn != first and is_supported_conv(module)

    return keep


def _replace(root, fqn, new):
    """Put ``new`` at ``fqn`` in ``root``; return the (possibly new) root."""
    if not fqn:
        return new
    parent_name, _, child = fqn.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)
    return root


def _swap(model, registry, select):
    targets = []
    for fqn, module in model.named_modules():
        handler = registry.get(type(module))
        if handler is not None and select(module, fqn):
            targets.append((fqn, module, handler))
    return targets


def prepare(model, config=None, *, inplace=False):
    """Swap the selected ``nn.Conv2d`` layers of ``model`` for ``SNNConv2d``.

    Weights and biases are copied; each layer gets its own subset, sampled with
    a seed derived from ``config.seed`` and the layer's name. With
    ``config.binary_act``, each swapped conv binarizes its input (its
    ``input_quantizer``), so an exported graph has ``Sign`` before it.

    Parameters
    ----------
    model : torch.nn.Module
        The float model.
    config : SNNConfig, optional
        Defaults to ``SNNConfig()``.
    inplace : bool
        Modify ``model`` itself instead of a deep copy.

    Returns
    -------
    torch.nn.Module
        The prepared model.

    Raises
    ------
    ConfigError
        On a bad config, or when ``config.filter_fn`` selects a conv that cannot be
        sub-bit (the message names the layer and its shape).
    """
    config = SNNConfig() if config is None else config
    if not isinstance(config, SNNConfig):
        raise ConfigError(f"prepare: config must be an SNNConfig, got {type(config).__name__}")
    config.validate()
    if not inplace:
        model = copy.deepcopy(model)
    select = config.filter_fn or default_filter(model)
    for fqn, module, handler in _swap(model, PREPARE_REGISTRY, select):
        new = handler(module, fqn, config)
        if new is not None:
            model = _replace(model, fqn, new)
    return model


@register_prepare(nn.Conv2d)
def _prepare_conv2d(conv, fqn, config):
    if tuple(conv.kernel_size) == KERNEL_1X1 and config.tau_1x1 is None:
        return None
    options = config.layer_options(config.tau_for(conv.kernel_size), derive_seed(config.seed, fqn))
    try:
        return SNNConv2d.from_conv(conv, **options)
    except ConfigError as error:
        raise ConfigError(f"layer {fqn or '<root>'}: {error}") from error


def convert(model, *, inplace=False):
    """Freeze a prepared model for export.

    Each ``SNNConv2d`` becomes a plain ``nn.Conv2d`` whose weight is exactly
    ``alpha[o] * codebook[idx]``, preceded (for binary activations) by
    :class:`~tvm_snn.train.quantizers.Sign` in an ``nn.Sequential``. The conv
    carries an :class:`SNNMeta` in its ``snn_meta`` attribute (not a parameter or
    buffer, so it does not enter the exported graph). In eval mode the frozen
    model computes exactly what the prepared one does.

    Parameters
    ----------
    model : torch.nn.Module
        A prepared model.
    inplace : bool
        Modify ``model`` itself instead of a deep copy.

    Returns
    -------
    torch.nn.Module
    """
    if not inplace:
        model = copy.deepcopy(model)
    for fqn, module, handler in _swap(model, CONVERT_REGISTRY, lambda m, name: True):
        model = _replace(model, fqn, handler(module))
    return model


@register_convert(SNNConv2d)
def _convert_snn_conv2d(layer):
    parts = layer.weight_quantizer.quantize(layer.weight)
    conv = nn.Conv2d(*conv_arguments(layer), **conv_keywords(layer))
    with torch.no_grad():
        conv.weight.copy_(layer.weight_quantizer.compose(parts, layer.weight.shape))
        if layer.bias is not None:
            conv.bias.copy_(layer.bias)
    kh, kw = layer.kernel_size
    meta = SNNMeta(
        kernel=f"{kh}x{kw}",
        tau=layer.tau,
        unit=layer.unit,
        codebook=parts.codebook.to(torch.int8).cpu(),
        indices=parts.indices.cpu(),
        alpha=parts.alpha.float().cpu(),
        activation=ACTIVATION_BINARY if layer.binary_act else ACTIVATION_FLOAT,
    )
    setattr(conv, META_ATTR, meta)
    frozen = nn.Sequential(Sign(), conv) if layer.binary_act else conv
    frozen.train(layer.training)
    return frozen


def snn_metadata(model):
    """Return ``{fqn: SNNMeta}`` for every frozen sub-bit conv of a converted model."""
    return {
        fqn: getattr(module, META_ATTR)
        for fqn, module in model.named_modules()
        if isinstance(getattr(module, META_ATTR, None), SNNMeta)
    }
