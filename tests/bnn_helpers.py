"""Random BNN baseline convs (:class:`schedules.bnn_xnor.BinaryConv`) for the kernel tests."""

import numpy as np

from schedules.bnn_xnor import BinaryConv

ALPHA_EXPONENTS = (-3, 3)
"""Alpha is a signed power of two in ``2**[-3, 3)``: ``alpha * acc`` stays exact in float32."""


def random_binary_conv(out_channels, in_channels, kernel, seed, **geometry):
    """Return a random +-1 conv with per-channel alpha, from a dense weight.

    Parameters
    ----------
    out_channels, in_channels, kernel : int
        The weight is ``[out_channels, in_channels, kernel, kernel]``.
    seed : int
        Seeds the signs and the alphas.
    **geometry
        ``stride``, ``padding`` for :meth:`BinaryConv.from_dense`.

    Returns
    -------
    BinaryConv
        Alphas are signed powers of two, so outputs compare bit for bit.
    """
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1, 1], np.int8), size=(out_channels, in_channels, kernel, kernel))
    low, high = ALPHA_EXPONENTS
    alpha = (2.0 ** rng.integers(low, high, out_channels) * rng.choice([-1, 1], out_channels)).astype(np.float32)
    weight = alpha[:, None, None, None] * signs.astype(np.float32)
    return BinaryConv.from_dense(weight, **geometry)
