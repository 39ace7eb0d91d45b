"""Sign estimators, the activation binarizer and the sub-bit weight quantizer.

Every quantizer here computes its forward value exactly (``sign(x)``, or
``alpha * codebook[idx]``) and takes its gradient from a *surrogate* function
through :func:`straight_through`::

    value.detach() + (surrogate - surrogate.detach())

The forward value is bit-exact because ``s - s`` is exactly zero, so a frozen
model (:func:`tvm_snn.train.convert`) reproduces the prepared one exactly.

Estimators (the surrogate's derivative is the backward pass):

- ``"ste"``: clipped identity, ``clamp(x, -1, 1)`` (the Hardtanh STE); gradient 1 on
  ``|x| <= 1``, 0 outside.
- ``"approxsign"``: Bi-Real's ApproxSign; gradient ``2 - 2|x|`` on ``|x| < 1``, 0 outside.
- ``"ede"``: IR-Net's error-decay estimator ``k * tanh(t * x)`` with
  ``t = T_min * 10**(p * log10(T_max / T_min))`` and ``k = max(1/t, 1)``, where
  ``p`` in [0, 1] is the training progress (:func:`set_progress`).

The state of the weight quantizer (the subset, the binary memory, the step
counter, the seed, the progress) lives in registered parameters and buffers, so
``state_dict`` and DDP carry it.
"""

import math
from typing import NamedTuple

import torch
from torch import nn

from tvm_snn.errors import ConfigError
from tvm_snn.schema import UNIT_1X1
from tvm_snn.train.subset import (
    SEED_BITS,
    all_kernels,
    derive_seed,
    duplicate_mask,
    kernel_codes,
    make_generator,
    nearest,
    sample_frequent,
    sample_missing,
    sample_random,
    unit_size,
)
from tvm_snn.train.validate import check_bool, check_choice, check_int, check_tau

CLIP = 1.0
"""Clip range of the STE and ApproxSign: the gradient is zero where ``|x| > CLIP``."""

EDE_T_MIN = 0.1
"""EDE's temperature at the start of training (progress 0)."""

EDE_T_MAX = 10.0
"""EDE's temperature at the end of training (progress 1)."""

STD_EPS = 1e-12
"""Added to the standard deviation in IR-Net's weight standardization."""

MEMORY_THRESHOLD = 1e-3
"""Latent entries with ``|latent| < MEMORY_THRESHOLD`` keep their previous sign."""

DEFAULT_REFINE_PERIOD = 25
"""Subset refinement runs on every ``K``-th training step (the official code's 25)."""

LATENT_BOUND = 3.0
"""After each refinement the latent subset is clamped to ``[-LATENT_BOUND, LATENT_BOUND]``."""

SAMPLE_KEY = "sample"
REFILL_KEY = "refill"

DEFAULT_ACT_ESTIMATOR = "approxsign"
DEFAULT_WEIGHT_ESTIMATOR = "ste"
SAMPLING_METHODS = ("random", "frequent")
DEFAULT_SAMPLING = "random"


def clipped_identity(x, progress):
    """Surrogate of the clipped STE (Hardtanh): ``clamp(x, -CLIP, CLIP)``."""
    return x.clamp(-CLIP, CLIP)


def approxsign(x, progress):
    """Surrogate of Bi-Real's ApproxSign: piecewise quadratic on ``[-CLIP, CLIP]``."""
    inner = torch.where(x < 0, 2 * x + x * x, 2 * x - x * x)
    return torch.where(x.abs() < CLIP, inner, torch.sign(x))


def ede_constants(progress):
    """Return EDE's ``(t, k)`` for a training progress in [0, 1].

    Parameters
    ----------
    progress : torch.Tensor
        Scalar in [0, 1].

    Returns
    -------
    tuple of torch.Tensor
        The temperature ``t`` and the scale ``k = max(1/t, 1)``.
    """
    t = EDE_T_MIN * torch.pow(10.0, progress * math.log10(EDE_T_MAX / EDE_T_MIN))
    k = torch.clamp(1.0 / t, min=1.0)
    return t, k


def error_decay(x, progress):
    """Surrogate of IR-Net's error-decay estimator: ``k * tanh(t * x)``."""
    t, k = ede_constants(progress.to(x.dtype))
    return k * torch.tanh(t * x)


ACTIVATION_ESTIMATORS = {"ste": clipped_identity, "approxsign": approxsign, "ede": error_decay}
"""Activation sign estimators by name."""

WEIGHT_ESTIMATORS = {"ste": clipped_identity, "ede": error_decay}
"""Weight sign estimators by name."""


def straight_through(value, surrogate):
    """Return ``value`` in the forward pass and the gradient of ``surrogate`` backward."""
    return value.detach() + (surrogate - surrogate.detach())


def check_progress(fraction):
    """Check a training progress value.

    Raises
    ------
    ConfigError
        If ``fraction`` is not a number in [0, 1].
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ConfigError(f"progress={fraction!r} must be a number in [0, 1]")
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"progress={fraction} must be in [0, 1]")


class Sign(nn.Module):
    """``torch.sign(x)``: the frozen activation binarizer (``Sign`` in ONNX; sign(0) = 0)."""

    def forward(self, x):
        """Return ``torch.sign(x)``."""
        return torch.sign(x)


class BinaryActivation(nn.Module):
    """Binarize activations: ``sign(x)`` forward, a selectable estimator backward.

    Note ``torch.sign(0) == 0``, as ONNX ``Sign``.

    Parameters
    ----------
    estimator : {"approxsign", "ste", "ede"}
        The backward pass; see the module docstring.
    """

    def __init__(self, estimator=DEFAULT_ACT_ESTIMATOR):
        super().__init__()
        check_choice("act_estimator", estimator, ACTIVATION_ESTIMATORS)
        self.estimator = estimator
        self.register_buffer("progress", torch.zeros(()))

    def forward(self, x):
        """Return ``sign(x)``, differentiable through the estimator."""
        surrogate = ACTIVATION_ESTIMATORS[self.estimator](x, self.progress)
        return straight_through(torch.sign(x), surrogate)

    def set_progress(self, fraction):
        """Set the training progress in [0, 1] (used by EDE)."""
        check_progress(fraction)
        self.progress.fill_(fraction)

    def extra_repr(self):
        return f"estimator={self.estimator!r}"


class QuantizedWeight(NamedTuple):
    """The parts of a projected weight.

    Attributes
    ----------
    alpha : torch.Tensor
        ``[O]`` per-output-channel scale.
    codebook : torch.Tensor
        ``[2**tau, unit]`` of +1/-1 (float).
    indices : torch.Tensor
        int64 ``[O, units per output channel]``.
    """

    alpha: torch.Tensor
    codebook: torch.Tensor
    indices: torch.Tensor


class SubsetWeightQuantizer(nn.Module):
    """Project conv weights onto a layer-specific subset of binary kernels.

    Each unit of the (optionally IR-Net balanced/standardized) weight is replaced
    by its nearest kernel of the subset, then each output channel is scaled by
    ``alpha = mean|w|`` (detached). With ``refine``, the subset is learned: a
    latent ``[2**tau, unit]`` parameter read through sign with a memory for
    near-zero entries; on every ``refine_period``-th training step it is
    de-duplicated, refilled, clamped, and receives a straight-through gradient
    through the one-hot assignment.

    ``tau == unit`` is the full set: plain binary weights (``sign(w)``, with
    ``sign(0) = +1``); refinement is then off.

    Under DDP, ``latent`` receives a gradient only on refinement steps: wrap the
    model with ``find_unused_parameters=True``. Refilled rows keep their
    optimizer state (as in the official code).

    Parameters
    ----------
    weight : torch.Tensor
        The conv weight ``[O, C_in / groups, kh, kw]``; gives the shape, the
        device, and the weights for ``sampling="frequent"``.
    tau : int
        Bits per unit: ``1 <= tau <= 9`` for 3x3, ``<= 8`` for 1x1.
    estimator : {"ste", "ede"}
        The backward pass of the weight sign.
    balance, standardize : bool
        IR-Net's weight balance (subtract the per-channel mean) and
        standardization (divide by the per-channel std).
    refine : bool
        Learn the subset (SNN) or keep it fixed (Vanilla-SNN).
    refine_period : int
        ``K``: refinement runs on every ``K``-th training-mode forward.
    sampling : {"random", "frequent"}
        Initial subset: uniform without replacement, or the most frequent nearest
        kernels of ``weight``.
    seed : int
        Seed of the initial sampling and of every refill.
    where : str
        A description of the layer for error messages.
    """

    def __init__(
        self,
        weight,
        tau,
        *,
        estimator=DEFAULT_WEIGHT_ESTIMATOR,
        balance=False,
        standardize=False,
        refine=True,
        refine_period=DEFAULT_REFINE_PERIOD,
        sampling=DEFAULT_SAMPLING,
        seed=0,
        where="",
    ):
        super().__init__()
        in_per_group = weight.shape[1]
        self.unit = unit_size(weight.shape[2:])
        if self.unit == UNIT_1X1 and in_per_group % UNIT_1X1:
            raise ConfigError(
                f"{where or 'layer'} with weight shape {tuple(weight.shape)}: 1x1 sub-bit convs "
                f"need in_channels per group divisible by {UNIT_1X1}, got {in_per_group}"
            )
        check_tau("tau", tau, self.unit, where)
        check_choice("weight_estimator", estimator, WEIGHT_ESTIMATORS, where)
        check_bool("ir_net_balance", balance, where)
        check_bool("ir_net_standardize", standardize, where)
        check_bool("refine", refine, where)
        check_int("refine_period", refine_period, minimum=1, where=where)
        check_choice("sampling", sampling, SAMPLING_METHODS, where)
        check_int("seed", seed, minimum=0, maximum=(1 << SEED_BITS) - 1, where=where)
        self.tau = tau
        self.full = tau == self.unit
        self.estimator = estimator
        self.balance = balance
        self.standardize = standardize
        self.refine = refine and not self.full
        self.refine_period = refine_period
        self.sampling = sampling
        rows = (1 << tau, self.unit)
        device = weight.device
        self.register_buffer("memory", torch.zeros(rows, device=device))
        self.register_buffer("step", torch.zeros((), dtype=torch.long, device=device))
        self.register_buffer("seed", torch.tensor(seed, dtype=torch.long, device=device))
        self.register_buffer("progress", torch.zeros((), device=device))
        if self.refine:
            self.latent = nn.Parameter(torch.zeros(rows, device=device))
        else:
            self.register_parameter("latent", None)
        self.reset(weight)

    @property
    def bits_per_weight(self):
        """``tau / unit``."""
        return self.tau / self.unit

    def reset(self, weight):
        """Sample a fresh subset (from ``weight`` for "frequent") and zero the step counter."""
        with torch.no_grad():
            if self.full:
                codes = torch.arange(1 << self.unit)
            elif self.sampling == "random":
                generator = make_generator(derive_seed(int(self.seed), SAMPLE_KEY))
                codes = sample_random(self.unit, self.tau, generator)
            else:
                codes = sample_frequent(self.preprocess(weight).reshape(-1, self.unit), self.tau)
            rows = all_kernels(self.unit)[codes].to(self.memory.device)
            self.memory.copy_(rows)
            if self.refine:
                self.latent.copy_(rows)
            self.step.zero_()

    def set_progress(self, fraction):
        """Set the training progress in [0, 1] (used by EDE)."""
        check_progress(fraction)
        self.progress.fill_(fraction)

    def preprocess(self, weight):
        """Apply IR-Net's balance and standardization, when enabled."""
        dims = tuple(range(1, weight.dim()))
        if self.balance:
            weight = weight - weight.mean(dim=dims, keepdim=True)
        if self.standardize:
            weight = weight / (weight.std(dim=dims, keepdim=True) + STD_EPS)
        return weight

    def _current(self):
        """The subset in use, without writing the memory."""
        if not self.refine:
            return self.memory
        with torch.no_grad():
            latent = self.latent.to(self.memory.dtype)
            return torch.where(latent.abs() >= MEMORY_THRESHOLD, torch.sign(latent), self.memory)

    def codebook(self):
        """Return the subset in use, ``[2**tau, unit]`` of +1/-1.

        With refinement, this is ``sign(latent)`` where ``|latent| >= MEMORY_THRESHOLD``
        and the memory elsewhere; in training mode it is written back to ``memory``.
        """
        current = self._current()
        if self.refine and self.training:
            with torch.no_grad():
                self.memory.copy_(current)
        return current

    def refresh(self):
        """De-duplicate the subset, refill duplicates, clamp the latents.

        Rows whose sign code already occurred in an earlier row are replaced by a
        fresh uniform sample of kernels not in the subset (seeded by the layer
        seed and the step counter), in both the memory and the latents. The
        latents are then clamped to ``[-LATENT_BOUND, LATENT_BOUND]``.
        """
        if not self.refine:
            return
        with torch.no_grad():
            memory = self._current().clone()
            codes = kernel_codes(memory)
            duplicates = duplicate_mask(codes)
            count = int(duplicates.sum())
            if count:
                seed = derive_seed(int(self.seed), REFILL_KEY, int(self.step))
                fresh = sample_missing(codes[~duplicates], count, self.unit, make_generator(seed))
                rows = all_kernels(self.unit, dtype=memory.dtype)[fresh].to(memory.device)
                memory[duplicates] = rows
                self.latent[duplicates] = rows.to(self.latent.dtype)
            self.memory.copy_(memory)
            self.latent.clamp_(-LATENT_BOUND, LATENT_BOUND)

    def _advance(self):
        """Count a training step; refresh and return True on refinement steps."""
        if not self.training:
            return False
        with torch.no_grad():
            self.step.add_(1)
        if self.refine and int(self.step) % self.refine_period == 0:
            self.refresh()
            return True
        return False

    def _assign(self, units, codebook):
        if self.full:
            return kernel_codes(units)
        return nearest(units, codebook)

    @staticmethod
    def _scale(binary, alpha, shape):
        return (binary.reshape(shape[0], -1) * alpha[:, None]).reshape(shape)

    def _alpha(self, weight):
        return weight.abs().mean(dim=tuple(range(1, weight.dim()))).detach()

    def forward(self, weight):
        """Return the effective weight ``alpha[o] * codebook[idx]``, shaped as ``weight``."""
        refine_now = self._advance()
        processed = self.preprocess(weight)
        alpha = self._alpha(processed)
        units = processed.reshape(-1, self.unit)
        codebook = self.codebook().to(units.dtype)
        indices = self._assign(units.detach(), codebook)
        surrogate = WEIGHT_ESTIMATORS[self.estimator](units, self.progress)
        binary = straight_through(codebook[indices], surrogate)
        if refine_now:
            selected = self.latent.to(units.dtype)[indices]
            binary = binary + (selected - selected.detach())
        return self._scale(binary, alpha, weight.shape)

    def quantize(self, weight):
        """Return the parts of the projected weight, without side effects.

        Returns
        -------
        QuantizedWeight
            ``alpha``, ``codebook`` and ``indices``, all detached.
        """
        with torch.no_grad():
            processed = self.preprocess(weight)
            alpha = self._alpha(processed)
            units = processed.reshape(-1, self.unit)
            codebook = self._current().clone().to(units.dtype)
            indices = self._assign(units, codebook).reshape(weight.shape[0], -1)
        return QuantizedWeight(alpha, codebook, indices)

    def compose(self, parts, shape):
        """Return ``alpha[o] * codebook[idx]`` shaped as ``shape``, computed exactly as ``forward``."""
        with torch.no_grad():
            binary = parts.codebook[parts.indices.reshape(-1)]
            return self._scale(binary, parts.alpha, shape)

    def effective_weight(self, weight):
        """Return the projected weight ``alpha[o] * codebook[idx]`` (detached)."""
        return self.compose(self.quantize(weight), weight.shape)

    def extra_repr(self):
        return (
            f"tau={self.tau}, unit={self.unit}, estimator={self.estimator!r}, "
            f"refine={self.refine}, refine_period={self.refine_period}, "
            f"sampling={self.sampling!r}"
        )


def set_progress(model, fraction):
    """Set the training progress of every quantizer in ``model`` (for EDE).

    Parameters
    ----------
    model : torch.nn.Module
        A prepared model.
    fraction : float
        The fraction of training done, in [0, 1] (e.g. ``epoch / epochs``).

    Raises
    ------
    ConfigError
        If ``fraction`` is not in [0, 1].
    """
    check_progress(fraction)
    for module in model.modules():
        if isinstance(module, (BinaryActivation, SubsetWeightQuantizer)):
            module.set_progress(fraction)
