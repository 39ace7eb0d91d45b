"""``CpuSpec``: what the kernels need to know of the CPU they run on."""

import os
from dataclasses import dataclass

from tvm.target import codegen

from schedules.knobs import ACC_REGISTERS, AVX2_BYTES, VECTOR_WIDTHS
from tvm_snn.errors import ConfigError

# Target features, widest first, and the SIMD register bytes they give.
_WIDTH_FEATURES = (("avx512f", 64), ("avx2", 32))
_NARROW_BYTES = 16  # NEON, SSE
_VBMI_FEATURE = "avx512vbmi"


@dataclass(frozen=True)
class CpuSpec:
    """The CPU facts the kernels and their schedules depend on.

    Attributes
    ----------
    num_cores : int
        Cores to spread work over.
    vector_bytes : int
        Bytes of the widest SIMD register: 64 (AVX-512), 32 (AVX2), 16 (NEON, SSE).
    vbmi : bool
        Whether the CPU has AVX-512 VBMI (byte permutes, multishift).
    """

    num_cores: int = 2
    vector_bytes: int = 64
    vbmi: bool = False

    def __post_init__(self):
        if isinstance(self.num_cores, bool) or not isinstance(self.num_cores, int) or self.num_cores < 1:
            raise ConfigError(f"CpuSpec.num_cores must be a positive integer, got {self.num_cores!r}")
        if self.vector_bytes not in VECTOR_WIDTHS:
            raise ConfigError(f"CpuSpec.vector_bytes must be one of {VECTOR_WIDTHS}, got {self.vector_bytes!r}")
        if not isinstance(self.vbmi, bool):
            raise ConfigError(f"CpuSpec.vbmi must be a bool, got {self.vbmi!r}")

    @property
    def acc_registers(self):
        """Vector registers the accumulators may take (AVX2 has half as many)."""
        return ACC_REGISTERS // 2 if self.vector_bytes == AVX2_BYTES else ACC_REGISTERS

    @classmethod
    def from_target(cls, target):
        """The spec of a ``tvm.target.Target``: its ``num-cores`` (else this
        machine's core count), SIMD width and VBMI."""
        cores = target.attrs.get("num-cores") if hasattr(target, "attrs") else None
        width = next(
            (nbytes for feature, nbytes in _WIDTH_FEATURES if codegen.target_has_features(feature, target)),
            _NARROW_BYTES,
        )
        vbmi = bool(codegen.target_has_features(_VBMI_FEATURE, target))
        return cls(int(cores) if cores else (os.cpu_count() or 1), width, vbmi)
