"""The accelerator's spec: a JSON config in the style of VTA's ``vta_config.json``.

A spec fixes the PE array, the clock, the on-chip buffers, the widest index
(``max_tau``) and the DRAM port. Two presets ship in ``hw_targets/configs``:

- ``paper``: the SNN paper's FPGA model, 64 PEs at 1 GHz, not tied to a device;
- ``pynq-z1``: sized for the Pynq-Z1's XC7Z020 at 100 MHz.

:func:`load_spec` takes a preset name, a path to a JSON file or a dict, and
validates it: every field present and in range, and for a spec with a
``device``, the estimated resources (:func:`resource_estimate`) within the
device's. A bad spec raises :class:`~tvm_snn.errors.FpgaConfigError` naming the
field.

The PE model (``docs/FPGA.md`` gives the reasoning): a PE is a pool of
``pe_adders`` small adders, and one operation of a mode costs its adds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from tvm_snn.errors import FpgaConfigError
from tvm_snn.schema import MAX_TAU, MIN_TAU

__all__ = [
    "BUFFERS",
    "SPEC_PRESETS",
    "AcceleratorSpec",
    "Resources",
    "load_spec",
    "resource_estimate",
]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
SPEC_PRESETS = ("paper", "pynq-z1")
BUFFERS = ("input", "index", "codebook", "weight", "response", "accumulator", "output", "params")
RESPONSE_BITS = 5  # a stored response: a ternary 3x3 dot lies in [-9, 9]
_INT_FIELDS = {
    "pe_count": (1, 4096),
    "pe_adders": (9, 4096),
    "alu_lanes": (1, 4096),
    "max_tau": (MIN_TAU, MAX_TAU),
    "accumulator_bits": (8, 32),
    "dram_bytes_per_cycle": (1, 1024),
    "dram_latency_cycles": (0, 100_000),
}
_DEVICE_FIELDS = ("part", "bram36", "dsp48", "luts", "flip_flops")
_KIB = 1024
_BRAM36_BYTES = 4096  # 32 Kbit of data per BRAM36 (the parity bits are not used)
# Resource model (docs/FPGA.md, "Resources"): LUTs per adder bit, per XNOR and per
# PE for control; DSPs per ALU lane (a binary64 multiply and add); the fixed part.
_LUTS_PER_ADDER_BIT = 1
_LUTS_PER_PE_CONTROL = 128
_LUTS_PER_ALU_LANE = 600
_LUTS_FIXED = 5000
_DSP_PER_ALU_LANE = 14
_FF_PER_LUT = 1.2


@dataclass(frozen=True)
class Resources:
    """An estimate of what a spec takes on an FPGA.

    Attributes
    ----------
    bram36, dsp48, luts, flip_flops : int
        Estimated use.
    device : dict or None
        The device's totals, when the spec names one.
    """

    bram36: int
    dsp48: int
    luts: int
    flip_flops: int
    device: dict | None = None

    def utilization(self) -> dict:
        """Use over the device's total per resource (empty without a device)."""
        if not self.device:
            return {}
        return {
            name: getattr(self, name) / self.device[name]
            for name in ("bram36", "dsp48", "luts", "flip_flops")
        }


@dataclass(frozen=True)
class AcceleratorSpec:
    """A validated accelerator config (see the module docstring).

    Attributes
    ----------
    name, description : str
    pe_count : int
        PEs in the array.
    pe_adders : int
        Small adders per PE; a mode does ``pe_adders // adds_per_op`` operations per cycle.
    alu_lanes : int
        Outputs the ALU finishes per cycle (one binary64 multiply-add each).
    clock_mhz : float
    max_tau : int
        The widest index the gather datapath takes.
    accumulator_bits : int
        Width of an accumulator; a layer whose sums may not fit is refused at compile time.
    buffers_kib : dict
        KiB of each on-chip buffer, keyed by :data:`BUFFERS`.
    dram_bytes_per_cycle : int
        DRAM bytes moved per clock cycle.
    dram_latency_cycles : int
        Cycles before the first byte of a LOAD or STORE moves.
    device : dict or None
        ``part``, ``bram36``, ``dsp48``, ``luts``, ``flip_flops`` of the FPGA it must fit.
    """

    name: str
    description: str
    pe_count: int
    pe_adders: int
    alu_lanes: int
    clock_mhz: float
    max_tau: int
    accumulator_bits: int
    buffers_kib: dict = field(repr=False)
    dram_bytes_per_cycle: int = 16
    dram_latency_cycles: int = 100
    device: dict | None = field(default=None, repr=False)

    def buffer_bits(self, name: str) -> int:
        """Capacity of buffer ``name`` in bits."""
        return int(self.buffers_kib[name] * _KIB * 8)

    def to_dict(self) -> dict:
        """The JSON form :func:`load_spec` reads back."""
        return {
            "name": self.name,
            "description": self.description,
            "pe_count": self.pe_count,
            "pe_adders": self.pe_adders,
            "alu_lanes": self.alu_lanes,
            "clock_mhz": self.clock_mhz,
            "max_tau": self.max_tau,
            "accumulator_bits": self.accumulator_bits,
            "buffers_kib": dict(self.buffers_kib),
            "dram_bytes_per_cycle": self.dram_bytes_per_cycle,
            "dram_latency_cycles": self.dram_latency_cycles,
            "device": None if self.device is None else dict(self.device),
        }


def _number(config: dict, key: str, where: str):
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FpgaConfigError(f"{where}: '{key}' must be a number, got {value!r}")
    return value


def _integer(config: dict, key: str, low: int, high: int, where: str) -> int:
    value = _number(config, key, where)
    if value != int(value) or not low <= value <= high:
        raise FpgaConfigError(
            f"{where}: '{key}' must be an integer in [{low}, {high}], got {value!r}"
        )
    return int(value)


def _buffers(config: dict, where: str) -> dict:
    buffers = config.get("buffers_kib")
    if not isinstance(buffers, dict):
        raise FpgaConfigError(f"{where}: 'buffers_kib' must be an object of {', '.join(BUFFERS)}")
    unknown = sorted(set(buffers) - set(BUFFERS))
    if unknown:
        raise FpgaConfigError(
            f"{where}: unknown buffer(s) {unknown}; the buffers are {', '.join(BUFFERS)}"
        )
    sizes = {}
    for name in BUFFERS:
        if name not in buffers:
            raise FpgaConfigError(f"{where}: buffer '{name}' has no size in 'buffers_kib'")
        size = _number(buffers, name, f"{where}: buffers_kib")
        if size <= 0:
            raise FpgaConfigError(f"{where}: buffer '{name}' must be larger than 0 KiB, got {size}")
        sizes[name] = size
    return sizes


def _device(config: dict, where: str) -> dict | None:
    device = config.get("device")
    if device is None:
        return None
    if not isinstance(device, dict) or not isinstance(device.get("part"), str):
        raise FpgaConfigError(
            f"{where}: 'device' must be null or an object with a 'part' name and {_DEVICE_FIELDS[1:]}"
        )
    checked = {"part": device["part"]}
    for key in _DEVICE_FIELDS[1:]:
        checked[key] = _integer(device, key, 1, 10**8, f"{where}: device")
    return checked


def _from_dict(config: dict, where: str) -> AcceleratorSpec:
    if not isinstance(config, dict):
        raise FpgaConfigError(f"{where}: a spec is a JSON object, got {type(config).__name__}")
    known = {"name", "description", "clock_mhz", "buffers_kib", "device", *_INT_FIELDS}
    unknown = sorted(set(config) - known)
    if unknown:
        raise FpgaConfigError(f"{where}: unknown field(s) {unknown}")
    name = config.get("name")
    if not isinstance(name, str) or not name:
        raise FpgaConfigError(f"{where}: 'name' must be a non-empty string")
    ints = {key: _integer(config, key, *bounds, where) for key, bounds in _INT_FIELDS.items()}
    clock = _number(config, "clock_mhz", where)
    if not 1 <= clock <= 10_000:
        raise FpgaConfigError(f"{where}: 'clock_mhz' must lie in [1, 10000], got {clock}")
    spec = AcceleratorSpec(
        name=name,
        description=str(config.get("description", "")),
        clock_mhz=float(clock),
        buffers_kib=_buffers(config, where),
        device=_device(config, where),
        **ints,
    )
    _check_datapath(spec, where)
    _check_fits(spec, where)
    return spec


def _check_datapath(spec: AcceleratorSpec, where: str) -> None:
    """Limits that follow from the datapath, not from one field alone."""
    codebook_bits = (1 << spec.max_tau) * 9  # the largest codebook: 2**tau rows of 9 signs
    if spec.buffer_bits("codebook") < codebook_bits:
        raise FpgaConfigError(
            f"{where}: max_tau={spec.max_tau} needs a codebook buffer of {codebook_bits} bits "
            f"(2**tau rows of 9 signs), the spec gives {spec.buffer_bits('codebook')}"
        )
    if spec.buffer_bits("response") < (1 << spec.max_tau) * RESPONSE_BITS:
        raise FpgaConfigError(
            f"{where}: the response buffer cannot hold one unit's {1 << spec.max_tau} responses"
        )


def _check_fits(spec: AcceleratorSpec, where: str) -> None:
    if spec.device is None:
        return
    used = resource_estimate(spec)
    for resource in ("bram36", "dsp48", "luts", "flip_flops"):
        need, have = getattr(used, resource), spec.device[resource]
        if need > have:
            raise FpgaConfigError(
                f"{where}: the spec needs an estimated {need} {resource} but the {spec.device['part']} has {have}"
            )


def resource_estimate(spec: AcceleratorSpec) -> Resources:
    """BRAM, DSP, LUT and flip-flop use of ``spec`` under the model of ``docs/FPGA.md``.

    Each buffer takes whole BRAM36s of 4 KiB; each adder is ``accumulator_bits``
    LUTs wide, each PE adds one LUT per adder for the XNORs and a control part;
    each ALU lane is a binary64 multiply-add (14 DSP48s and 600 LUTs); the DMA,
    queues and instruction fetch are a fixed 5,000 LUTs.
    """
    bram = sum(math.ceil(spec.buffers_kib[name] * _KIB / _BRAM36_BYTES) for name in BUFFERS)
    per_pe = (
        spec.pe_adders * (spec.accumulator_bits * _LUTS_PER_ADDER_BIT + 1) + _LUTS_PER_PE_CONTROL
    )
    luts = spec.pe_count * per_pe + spec.alu_lanes * _LUTS_PER_ALU_LANE + _LUTS_FIXED
    return Resources(
        bram36=bram,
        dsp48=spec.alu_lanes * _DSP_PER_ALU_LANE,
        luts=luts,
        flip_flops=int(luts * _FF_PER_LUT),
        device=spec.device,
    )


def load_spec(spec="paper") -> AcceleratorSpec:
    """Read and validate a spec.

    Parameters
    ----------
    spec : str, pathlib.Path, dict or AcceleratorSpec
        A preset name (:data:`SPEC_PRESETS`), a path to a JSON file, or its parsed form.

    Returns
    -------
    AcceleratorSpec

    Raises
    ------
    FpgaConfigError
        An unknown preset, an unreadable file or any invalid field.
    """
    if isinstance(spec, AcceleratorSpec):
        return spec
    if isinstance(spec, dict):
        return _from_dict(spec, "spec")
    if isinstance(spec, str) and spec in SPEC_PRESETS:
        path = CONFIG_DIR / f"{spec}.json"
    elif isinstance(spec, (str, Path)) and str(spec).endswith(".json"):
        path = Path(spec)
    else:
        raise FpgaConfigError(
            f"unknown accelerator config {spec!r}: use one of {SPEC_PRESETS} or a path to a .json file"
        )
    try:
        config = json.loads(path.read_text())
    except OSError as exc:
        raise FpgaConfigError(f"cannot read the accelerator config {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise FpgaConfigError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    return _from_dict(config, str(path))
