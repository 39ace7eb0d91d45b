"""``SNNConfig``: the typed, validated, versioned configuration of :func:`prepare`."""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from tvm_snn.errors import ConfigError
from tvm_snn.train.layers import DEFAULT_TAU_1X1, DEFAULT_TAU_3X3
from tvm_snn.train.quantizers import (
    ACTIVATION_ESTIMATORS,
    DEFAULT_ACT_ESTIMATOR,
    DEFAULT_REFINE_PERIOD,
    DEFAULT_SAMPLING,
    DEFAULT_WEIGHT_ESTIMATOR,
    SAMPLING_METHODS,
    WEIGHT_ESTIMATORS,
)
from tvm_snn.train.subset import KERNEL_1X1, KERNEL_3X3, UNIT_1X1, UNIT_3X3
from tvm_snn.train.validate import check_bool, check_choice, check_int, check_tau

CONFIG_VERSION = 1
"""Version of the :class:`SNNConfig` schema; :meth:`SNNConfig.from_dict` checks it."""

NOT_SERIALIZED = ("filter_fn",)
"""Fields that :meth:`SNNConfig.to_dict` leaves out (callables)."""


@dataclass(frozen=True)
class SNNConfig:
    """How :func:`tvm_snn.train.prepare` turns convs into sub-bit convs.

    Every field is validated on construction; a bad value raises
    :class:`~tvm_snn.errors.ConfigError` naming the field.

    Attributes
    ----------
    tau_3x3 : int
        Bits per 3x3 kernel, ``1..9`` (9 = full set, plain binary weights).
    tau_1x1 : int or None
        Bits per 8-channel unit of a 1x1 conv, ``1..8`` (8 = full set);
        ``None`` keeps every 1x1 conv in full precision.
    binary_act : bool
        Binarize the inputs of the swapped convs (W1A1).
    act_estimator : {"approxsign", "ste", "ede"}
        The activation sign's backward pass.
    weight_estimator : {"ste", "ede"}
        The weight sign's backward pass.
    ir_net_balance, ir_net_standardize : bool
        IR-Net's weight balance and standardization.
    refine : bool
        Learn each layer's subset (SNN); ``False`` is Vanilla-SNN.
    refine_period : int
        Refinement runs every ``refine_period`` training steps (default 25).
    sampling : {"random", "frequent"}
        Initial subsets: uniform without replacement, or the most frequent
        nearest kernels of the current weights ("Baseline B").
    seed : int
        Base seed; each layer's seed is derived from it and the layer's name.
    filter_fn : callable or None
        ``filter_fn(module, fqn) -> bool`` selects the convs to swap. ``None``
        uses :func:`tvm_snn.train.prepare.default_filter`.
    version : int
        The schema version, ``CONFIG_VERSION``.
    """

    tau_3x3: int = DEFAULT_TAU_3X3
    tau_1x1: int | None = DEFAULT_TAU_1X1
    binary_act: bool = False
    act_estimator: str = DEFAULT_ACT_ESTIMATOR
    weight_estimator: str = DEFAULT_WEIGHT_ESTIMATOR
    ir_net_balance: bool = False
    ir_net_standardize: bool = False
    refine: bool = True
    refine_period: int = DEFAULT_REFINE_PERIOD
    sampling: str = DEFAULT_SAMPLING
    seed: int = 0
    filter_fn: Callable | None = field(default=None, compare=False)
    version: int = CONFIG_VERSION

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Check every field.

        Raises
        ------
        ConfigError
            Naming the first bad field.
        """
        where = "SNNConfig"
        check_int("version", self.version, where=where)
        if self.version != CONFIG_VERSION:
            raise ConfigError(
                f"{where}: version={self.version} is not supported (expected {CONFIG_VERSION})"
            )
        check_tau("tau_3x3", self.tau_3x3, UNIT_3X3, where)
        if self.tau_1x1 is not None:
            check_tau("tau_1x1", self.tau_1x1, UNIT_1X1, where)
        check_bool("binary_act", self.binary_act, where)
        check_choice("act_estimator", self.act_estimator, ACTIVATION_ESTIMATORS, where)
        check_choice("weight_estimator", self.weight_estimator, WEIGHT_ESTIMATORS, where)
        check_bool("ir_net_balance", self.ir_net_balance, where)
        check_bool("ir_net_standardize", self.ir_net_standardize, where)
        check_bool("refine", self.refine, where)
        check_int("refine_period", self.refine_period, minimum=1, where=where)
        check_choice("sampling", self.sampling, SAMPLING_METHODS, where)
        check_int("seed", self.seed, minimum=0, where=where)
        if self.filter_fn is not None and not callable(self.filter_fn):
            raise ConfigError(f"{where}: filter_fn={self.filter_fn!r} is not callable")

    def tau_for(self, kernel_size):
        """Return tau for a kernel size, or ``None`` when such convs stay in full precision."""
        key = tuple(kernel_size)
        if key == KERNEL_3X3:
            return self.tau_3x3
        if key == KERNEL_1X1:
            return self.tau_1x1
        return None

    def layer_options(self, tau, seed):
        """Return the keyword-only :class:`~tvm_snn.train.SNNConv2d` options for one layer."""
        return {
            "tau": tau,
            "binary_act": self.binary_act,
            "act_estimator": self.act_estimator,
            "weight_estimator": self.weight_estimator,
            "ir_net_balance": self.ir_net_balance,
            "ir_net_standardize": self.ir_net_standardize,
            "refine": self.refine,
            "refine_period": self.refine_period,
            "sampling": self.sampling,
            "seed": seed,
        }

    def to_dict(self):
        """Return the fields as a plain dict (``filter_fn`` is left out)."""
        return {
            item.name: getattr(self, item.name)
            for item in dataclasses.fields(self)
            if item.name not in NOT_SERIALIZED
        }

    @classmethod
    def from_dict(cls, data):
        """Build a config from :meth:`to_dict` output.

        Raises
        ------
        ConfigError
            On unknown keys or an unsupported version.
        """
        names = {item.name for item in dataclasses.fields(cls)} - set(NOT_SERIALIZED)
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"SNNConfig: unknown fields {unknown}")
        return cls(**data)
