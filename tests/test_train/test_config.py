"""Tests of ``SNNConfig`` validation and versioning."""

import dataclasses

import pytest

from tvm_snn.errors import ConfigError
from tvm_snn.train import CONFIG_VERSION, SNNConfig


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tau_3x3", 0),
        ("tau_3x3", 10),
        ("tau_3x3", 2.5),
        ("tau_3x3", True),
        ("tau_1x1", 0),
        ("tau_1x1", 9),
        ("binary_act", 1),
        ("act_estimator", "sigmoid"),
        ("weight_estimator", "approxsign"),
        ("weight_estimator", "STE"),
        ("ir_net_balance", "no"),
        ("refine", None),
        ("refine_period", 0),
        ("sampling", "kmeans"),
        ("seed", -3),
        ("filter_fn", 42),
        ("version", CONFIG_VERSION + 1),
    ],
)
def test_bad_fields_raise_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        SNNConfig(**{field: value})


@pytest.mark.parametrize(("tau_3x3", "tau_1x1"), [(1, 1), (9, 8), (5, None), (8, 7)])
def test_edge_taus_are_accepted(tau_3x3, tau_1x1):
    config = SNNConfig(tau_3x3=tau_3x3, tau_1x1=tau_1x1)
    assert config.tau_for((3, 3)) == tau_3x3
    assert config.tau_for((1, 1)) == tau_1x1
    assert config.tau_for((5, 5)) is None


def test_config_is_frozen_and_round_trips_through_a_dict():
    config = SNNConfig(
        tau_3x3=4, binary_act=True, act_estimator="ede", seed=7, filter_fn=lambda module, fqn: True
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.tau_3x3 = 3
    data = config.to_dict()
    assert "filter_fn" not in data and data["version"] == CONFIG_VERSION
    assert SNNConfig.from_dict(data) == dataclasses.replace(config, filter_fn=None)


def test_from_dict_rejects_unknown_fields_and_versions():
    with pytest.raises(ConfigError, match="unknown fields"):
        SNNConfig.from_dict({"tau": 5})
    with pytest.raises(ConfigError, match="version"):
        SNNConfig.from_dict({"version": 0})
