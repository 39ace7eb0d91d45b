"""Small argument checks shared by the config, the layers and the quantizers.

Each check raises :class:`tvm_snn.errors.ConfigError` with a message naming the
field and, when given, where it was set.
"""

from tvm_snn.errors import ConfigError
from tvm_snn.train.subset import MIN_TAU


def _where(where):
    return f"{where}: " if where else ""


def check_choice(field, value, choices, where=""):
    """Check that ``value`` is one of ``choices``.

    Parameters
    ----------
    field : str
        The argument name, for the message.
    value : object
        The value to check.
    choices : iterable of str
        The accepted values.
    where : str, optional
        The layer or object the value belongs to.

    Raises
    ------
    ConfigError
        If ``value`` is not accepted.
    """
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{_where(where)}{field}={value!r} is not one of {choices}")


def check_int(field, value, minimum=None, maximum=None, where=""):
    """Check that ``value`` is an int (not a bool), optionally within ``[minimum, maximum]``.

    Raises
    ------
    ConfigError
        If it is not.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{_where(where)}{field}={value!r} must be an int")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{_where(where)}{field}={value} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{_where(where)}{field}={value} must be <= {maximum}")


def check_bool(field, value, where=""):
    """Check that ``value`` is a bool.

    Raises
    ------
    ConfigError
        If it is not.
    """
    if not isinstance(value, bool):
        raise ConfigError(f"{_where(where)}{field}={value!r} must be a bool")


def check_tau(field, tau, unit, where=""):
    """Check bits per unit: ``1 <= tau <= unit``.

    ``tau == unit`` is the full set of ``2**unit`` kernels, i.e. a plain binary
    (1 bit per weight) layer.

    Raises
    ------
    ConfigError
        If ``tau`` is not an int in range.
    """
    check_int(field, tau, where=where)
    if not MIN_TAU <= tau <= unit:
        raise ConfigError(
            f"{_where(where)}{field}={tau} is out of range: need {MIN_TAU} <= tau <= {unit} "
            f"({unit} means the full set, plain binary weights)"
        )
