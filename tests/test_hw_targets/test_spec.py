"""The accelerator spec: presets load, bad configs are refused by name, the resource estimate."""

import copy
import json

import pytest

from hw_targets.spec import SPEC_PRESETS, load_spec, resource_estimate
from tvm_snn.errors import FpgaConfigError


def test_presets_load_with_their_headline_parameters():
    paper = load_spec("paper")
    assert (paper.pe_count, paper.clock_mhz) == (64, 1000.0)
    pynq = load_spec("pynq-z1")
    assert pynq.clock_mhz == 100.0
    assert pynq.device["part"].startswith("xc7z020")
    assert set(SPEC_PRESETS) == {"paper", "pynq-z1"}


def test_pynq_preset_fits_the_xc7z020():
    """The XC7Z020's datasheet totals: 140 BRAM36, 220 DSP48E1, 53,200 LUTs, 106,400 flip-flops."""
    pynq = load_spec("pynq-z1")
    assert (pynq.device["bram36"], pynq.device["dsp48"], pynq.device["luts"]) == (140, 220, 53200)
    used = resource_estimate(pynq)
    for resource, share in used.utilization().items():
        assert 0 < share <= 1, resource


def test_resource_estimate_by_hand():
    """pynq-z1: buffers 32+64+1+64+128+128+64+8 KiB in 4 KiB BRAM36s; 16 PEs of 72 adders x (16+1) LUTs + 128."""
    used = resource_estimate(load_spec("pynq-z1"))
    assert used.bram36 == 8 + 16 + 1 + 16 + 32 + 32 + 16 + 2
    assert used.dsp48 == 8 * 14
    assert used.luts == 16 * (72 * 17 + 128) + 8 * 600 + 5000


def test_a_json_file_and_a_dict_load(tmp_path):
    config = load_spec("paper").to_dict()
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(dict(config, name="mine")))
    assert load_spec(path).name == "mine"
    assert load_spec(config) == load_spec("paper")


def _broken(**changes):
    config = copy.deepcopy(load_spec("pynq-z1").to_dict())
    for key, value in changes.items():
        if key.startswith("buffer_"):
            config["buffers_kib"][key[len("buffer_") :]] = value
        else:
            config[key] = value
    return config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pe_count": 0}, "'pe_count' must be an integer"),
        ({"max_tau": 10}, "'max_tau'"),
        ({"clock_mhz": "fast"}, "'clock_mhz' must be a number"),
        ({"buffer_input": -1}, "buffer 'input' must be larger than 0"),
        ({"buffer_accumulator": 2048}, "bram36"),
        ({"pe_count": 64}, "luts"),
        ({"alu_lanes": 32}, "dsp48"),
        ({"buffer_codebook": 0.1}, "max_tau=8 needs a codebook buffer"),
        ({"speed": 3}, "unknown field"),
    ],
)
def test_bad_configs_are_refused_by_name(changes, message):
    with pytest.raises(FpgaConfigError, match=message):
        load_spec(_broken(**changes))


def test_unknown_preset_and_unreadable_files(tmp_path):
    with pytest.raises(FpgaConfigError, match="unknown accelerator config 'zcu104'"):
        load_spec("zcu104")
    with pytest.raises(FpgaConfigError, match="cannot read"):
        load_spec(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(FpgaConfigError, match="not valid JSON"):
        load_spec(bad)
