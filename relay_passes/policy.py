"""``LoweringPolicy``: what the SNN detector may lower (public as ``tvm_snn.LoweringPolicy``).

A typed, validated, versioned dataclass in the style of
:class:`tvm_snn.train.SNNConfig`: every field is checked on construction,
and :meth:`LoweringPolicy.to_dict` / :meth:`LoweringPolicy.from_dict`
round-trip it through plain JSON values (a tuning database or an artifact
manifest records the policy it was built with).
"""

import dataclasses
from dataclasses import dataclass

from schedules.subbit import MAX_TAU_1X1, MAX_TAU_3X3, MIN_TAU
from tvm_snn.errors import ConfigError

POLICY_VERSION = 1
"""Version of the :class:`LoweringPolicy` schema; :meth:`LoweringPolicy.from_dict` checks it."""

# Largest tau lowered by default: 9 bits (3x3) or 8 bits (1x1) is the full set, i.e. a BNN.
DEFAULT_MAX_TAU_3X3 = 8
DEFAULT_MAX_TAU_1X1 = 7
# Lower when the SNN op count is at most this fraction of the dense conv's.
DEFAULT_PROFIT_RATIO = 1.0


@dataclass(frozen=True)
class LoweringPolicy:
    """What the detector may lower.

    Attributes
    ----------
    max_tau_3x3, max_tau_1x1 : int
        Caps on tau; a conv that needs more bits stays dense.
    profit_ratio : float
        Lower when ``snn_ops <= profit_ratio * dense_ops``.
    enabled : bool
        False keeps every conv dense (TVM's own path, a benchmark peer).
    version : int
        The schema version, ``POLICY_VERSION``.

    Raises
    ------
    ConfigError
        On construction, naming the first bad field.
    """

    max_tau_3x3: int = DEFAULT_MAX_TAU_3X3
    max_tau_1x1: int = DEFAULT_MAX_TAU_1X1
    profit_ratio: float = DEFAULT_PROFIT_RATIO
    enabled: bool = True
    version: int = POLICY_VERSION

    def __post_init__(self):
        if self.version != POLICY_VERSION:
            raise ConfigError(
                f"LoweringPolicy: version={self.version!r} is not supported (expected {POLICY_VERSION})"
            )
        for name, top in (("max_tau_3x3", MAX_TAU_3X3), ("max_tau_1x1", MAX_TAU_1X1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not MIN_TAU <= value <= top:
                raise ConfigError(
                    f"LoweringPolicy.{name} must be an integer in [{MIN_TAU}, {top}], got {value!r}"
                )
        ratio = self.profit_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
            raise ConfigError(
                f"LoweringPolicy.profit_ratio must be a positive number, got {ratio!r}"
            )
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"LoweringPolicy.enabled must be a bool, got {self.enabled!r}")

    def to_dict(self):
        """Return the fields as a plain dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Build a policy from :meth:`to_dict` output.

        Raises
        ------
        ConfigError
            On a non-dict, unknown keys or an unsupported version.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"LoweringPolicy.from_dict needs a dict, got {type(data).__name__}")
        names = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"LoweringPolicy: unknown fields {unknown}")
        return cls(**data)
