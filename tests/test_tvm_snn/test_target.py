"""Target parsing: CLI strings, presets, dicts and typed errors."""

import pytest
import tvm

from tvm_snn.errors import TargetError
from tvm_snn.target import host_cpu, parse_target, runs_on_host, target_arch, target_spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("llvm", {"kind": "llvm"}),
        ("llvm -mcpu=skylake-avx512", {"kind": "llvm", "mcpu": "skylake-avx512"}),
        (
            "llvm -mtriple=aarch64-linux-gnu -mattr=+neon",
            {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]},
        ),
        (
            "llvm -mcpu=skylake-avx512 -num-cores=4 -mattr=+avx512f,+avx512bw",
            {
                "kind": "llvm",
                "mcpu": "skylake-avx512",
                "num-cores": 4,
                "mattr": ["+avx512f", "+avx512bw"],
            },
        ),
        ("llvm -fast-math", {"kind": "llvm", "fast-math": True}),
        ("llvm -fast-math=0 -opt-level=2", {"kind": "llvm", "fast-math": False, "opt-level": 2}),
    ],
)
def test_cli_strings(text, expected):
    assert target_spec(text) == expected
    target = parse_target(text)
    assert isinstance(target, tvm.target.Target)
    assert target.kind.name == "llvm"


def test_cli_string_values_reach_tvm():
    target = parse_target("llvm -mtriple=aarch64-linux-gnu -mattr=+neon -num-cores=4")
    assert str(target.attrs["mtriple"]) == "aarch64-linux-gnu"
    assert int(target.attrs["num-cores"]) == 4
    assert "arm_cpu" in [str(key) for key in target.keys]


def test_native_means_this_host():
    assert target_spec("llvm -mcpu=native")["mcpu"] == host_cpu()


def test_presets():
    x86 = target_spec("x86")
    assert x86["mcpu"] == host_cpu() and x86["mtriple"].startswith("x86_64")
    assert target_arch("x86") == "x86_64" and runs_on_host("x86")
    assert target_spec("aarch64")["mtriple"] == "aarch64-linux-gnu"
    assert target_arch("aarch64") == "aarch64" and not runs_on_host("aarch64")
    pynq = target_spec("pynq")
    assert pynq["mtriple"] == "armv7a-linux-gnueabihf" and pynq["mcpu"] == "cortex-a9"
    assert "+neon" in pynq["mattr"] and target_arch("pynq") == "armv7"
    for preset in ("x86", "aarch64", "pynq"):
        parse_target(preset)


def test_dict_and_target_round_trip():
    spec = {"kind": "llvm", "mcpu": "skylake-avx512", "num-cores": 2}
    assert target_spec(spec) == spec
    assert target_spec(parse_target(spec)) == spec


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("cuda", "accepted kinds: llvm"),
        ("llvm -frobnicate=1", "accepted flags for 'llvm'"),
        ("llvm -mcpu=not-a-cpu", "not-a-cpu"),
        ("llvm -num-cores=many", "-num-cores"),
        ("llvm -mcpu", "needs a value"),
        ("llvm mcpu=x", "-name=value"),
        ("   ", "presets"),
        ({"kind": "llvm", "frobnicate": 1}, "frobnicate"),
        ({"kind": "opencl"}, "accepted kinds"),
        (42, "must be a str"),
    ],
)
def test_bad_targets_raise_typed_errors(bad, fragment):
    with pytest.raises(TargetError, match=fragment.replace("-", r"\-").replace("'", ".")):
        parse_target(bad)
    assert issubclass(TargetError, ValueError)
