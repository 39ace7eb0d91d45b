"""Target handling: CLI strings, dicts, presets, to TVM 0.27's JSON form.

TVM 0.27 refuses ``Target("llvm -mcpu=x")``; it takes a JSON dict only. Users
know the CLI strings, so :func:`parse_target` parses them, checking each flag
against the option schema that TVM itself registers for the target kind.
"""

import functools
import os
import shlex

import tvm
from tvm.target import Target, TargetKind

from tvm_snn.errors import TargetError
from tvm_snn.threads import available_cores

SUPPORTED_KINDS = ("llvm",)
HOST_TRIPLE = "x86_64-linux-gnu"
AARCH64_TRIPLE = "aarch64-linux-gnu"
ARMV7_TRIPLE = "armv7a-linux-gnueabihf"

# Keys of Target.export() that TVM derives itself and refuses or ignores as input.
_DERIVED_KEYS = ("tag", "keys")
_DERIVED_PREFIX = "feature."


@functools.cache
def host_cpu():
    """Return LLVM's name for this machine's CPU (``-mcpu=native`` is refused here)."""
    return str(tvm.get_global_func("target.llvm_get_system_cpu")())


def _x86_preset():
    return {
        "kind": "llvm",
        "mtriple": HOST_TRIPLE,
        "mcpu": host_cpu(),
        "num-cores": len(available_cores()),
    }


def _aarch64_preset():
    return {"kind": "llvm", "mtriple": AARCH64_TRIPLE, "mattr": ["+neon"]}


def _pynq_preset():
    # Pynq-Z1/Z2: dual Cortex-A9 (ARMv7-A) with NEON and hard float.
    return {
        "kind": "llvm",
        "mtriple": ARMV7_TRIPLE,
        "mcpu": "cortex-a9",
        "mattr": ["+neon"],
        "mfloat-abi": "hard",
        "num-cores": 2,
    }


PRESETS = {"x86": _x86_preset, "aarch64": _aarch64_preset, "pynq": _pynq_preset}


def _options(kind):
    return dict(TargetKind.options_from_name(kind))


def _convert(kind, key, value, schema):
    """Convert one CLI flag value to the type TVM's schema declares."""
    type_key = schema[key]
    if type_key == "Array<str>":
        return [item for item in value.split(",") if item]
    if type_key == "int":
        try:
            return int(value)
        except ValueError:
            raise TargetError(
                f"target flag -{key} of kind {kind!r} takes an integer, got {value!r}"
            ) from None
    if type_key == "bool":
        truth = {"1": True, "true": True, "0": False, "false": False}
        if value.lower() not in truth:
            raise TargetError(f"target flag -{key} takes true/false or 1/0, got {value!r}")
        return truth[value.lower()]
    if type_key == "str":
        return value
    raise TargetError(f"target flag -{key} (type {type_key}) cannot be given on the command line")


def _parse_cli(text):
    """Parse ``"llvm -mcpu=skylake-avx512 -num-cores=4"`` into a JSON dict."""
    tokens = shlex.split(text)
    kind = tokens[0]
    if kind not in SUPPORTED_KINDS:
        raise TargetError(
            f"unknown target kind {kind!r} in {text!r}; accepted kinds: {', '.join(SUPPORTED_KINDS)}; "
            f"presets: {', '.join(PRESETS)}"
        )
    schema = _options(kind)
    settable = sorted(
        k for k in schema if k not in ("kind", "host", "from_device", "target_device_type")
    )
    spec = {"kind": kind}
    for token in tokens[1:]:
        if not token.startswith("-") or token == "-":
            raise TargetError(f"target flag {token!r} in {text!r} must look like -name=value")
        key, sep, value = token.lstrip("-").partition("=")
        if key not in settable:
            raise TargetError(
                f"unknown target flag -{key} in {text!r}; accepted flags for {kind!r}: "
                + ", ".join(f"-{k}" for k in settable)
            )
        if not sep:
            if schema[key] != "bool":
                raise TargetError(f"target flag -{key} in {text!r} needs a value: -{key}=...")
            value = "true"
        spec[key] = _convert(kind, key, value, schema)
    return spec


def _spec_from_target(target):
    spec = {}
    for key, value in target.export().items():
        if key in _DERIVED_KEYS or key.startswith(_DERIVED_PREFIX) or key == "host":
            continue
        if isinstance(value, (str, int, float, bool)):
            spec[key] = value
        else:
            spec[key] = [str(item) for item in value]
    return spec


def _check_mcpu(spec):
    mcpu = spec.get("mcpu")
    if mcpu is None:
        return spec
    if mcpu == "native":
        spec = {**spec, "mcpu": host_cpu()}
        mcpu = spec["mcpu"]
    triple = spec.get("mtriple", HOST_TRIPLE)
    if not bool(tvm.get_global_func("target.llvm_is_valid_cpu")(mcpu, triple)):
        raise TargetError(f"-mcpu={mcpu} is not a CPU that LLVM knows for triple {triple!r}")
    return spec


def target_spec(target):
    """Normalize any accepted target form to a plain JSON dict.

    Parameters
    ----------
    target : str, dict or tvm.target.Target
        A preset name (``"x86"``, ``"aarch64"``, ``"pynq"``), a TVM CLI target
        string (``"llvm -mcpu=... -mtriple=... -mattr=..."``), a JSON dict or a
        ``Target``.

    Returns
    -------
    dict
        The JSON form that ``tvm.target.Target`` accepts; stable enough to be
        written to a manifest and read back.
    """
    if isinstance(target, Target):
        return _spec_from_target(target)
    if isinstance(target, dict):
        spec = dict(target)
        kind = spec.get("kind")
        if kind not in SUPPORTED_KINDS:
            raise TargetError(
                f"unknown target kind {kind!r}; accepted kinds: {', '.join(SUPPORTED_KINDS)}"
            )
        unknown = sorted(set(spec) - set(_options(kind)))
        if unknown:
            raise TargetError(f"unknown target option(s) {unknown} for kind {kind!r}")
        return _check_mcpu(spec)
    if isinstance(target, str):
        text = target.strip()
        if not text:
            raise TargetError(f"empty target string; presets: {', '.join(PRESETS)}")
        if text in PRESETS:
            return PRESETS[text]()
        return _check_mcpu(_parse_cli(text))
    raise TargetError(
        f"target must be a str, dict or tvm.target.Target, got {type(target).__name__}"
    )


def parse_target(target):
    """Return the ``tvm.target.Target`` for any accepted target form.

    See :func:`target_spec` for the accepted forms.

    Raises
    ------
    TargetError
        For an unknown preset, kind or flag, a bad value, or a CPU that LLVM
        does not know. The message lists what is accepted.
    """
    spec = target_spec(target)
    try:
        return Target(spec)
    except (ValueError, RuntimeError) as err:
        raise TargetError(f"TVM refused target {spec}: {err}") from None


def target_arch(target):
    """Return ``"x86_64"``, ``"aarch64"`` or ``"armv7"`` for a target."""
    triple = target_spec(target).get("mtriple", HOST_TRIPLE)
    if triple.startswith(("aarch64", "arm64")):
        return "aarch64"
    if triple.startswith(("arm", "thumb")):
        return "armv7"
    if triple.startswith(("x86_64", "amd64")):
        return "x86_64"
    raise TargetError(f"unsupported target triple {triple!r}; supported: x86_64, aarch64, armv7")


def runs_on_host(target):
    """Whether code built for ``target`` can run on this machine."""
    return target_arch(target) == "x86_64" and os.uname().machine == "x86_64"
