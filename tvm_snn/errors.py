"""The one error hierarchy of tvm-snn.

Every error the project raises on bad input derives from :class:`SNNError`.
Messages name what was wrong and where: the op, the node, the flag, the shape.

This module imports nothing, so every layer (``schedules``, ``relay_passes``,
``hw_targets``, ``tvm_snn.train``) may import it without pulling in the
compiler. It is the one exception to "lower layers never import upper ones".
"""


class SNNError(Exception):
    """Base class of every error raised by tvm-snn."""


class TargetError(SNNError, ValueError):
    """A target string, dict or preset that cannot be understood."""


class ModelImportError(SNNError):
    """A model that cannot be read or converted to Relax."""


class UnsupportedOpError(ModelImportError):
    """A model uses an operator that the importer cannot convert."""


class InputError(SNNError, ValueError):
    """Inputs given at run time do not match the compiled signature."""


class CompileError(SNNError):
    """TVM failed to build a model that was imported successfully."""


class ArtifactError(SNNError):
    """A saved artifact is missing, corrupt or does not match its manifest."""


class NotRunnableError(SNNError):
    """A compiled model was built for another machine and cannot run here."""


class ToolchainError(SNNError):
    """A compiler or tool needed for a cross target is not installed."""


class FormatError(SNNError, ValueError):
    """A sub-bit conv description is inconsistent (shapes, tau, codebook)."""


class ConfigError(SNNError, ValueError):
    """A configuration value is invalid (training, tuning, deployment)."""


class DataError(SNNError):
    """A data set folder is missing or corrupt."""


class QemuRunError(SNNError):
    """A kernel run under qemu-user failed, crashed or timed out; carries the harness's stderr."""


class TuningError(SNNError):
    """A tuning run or its database cannot be used: corrupt, truncated, or made for another model or target."""


class StandaloneError(SNNError):
    """A model cannot become a standalone program (control flow, dynamic shapes, an op the driver cannot run), or its build or run failed."""


class DeployError(SNNError):
    """Deployment to a board failed: no server, a wrong key or architecture, a timeout, or outputs that do not match."""


class FpgaError(SNNError):
    """Base class of the FPGA target's errors (``hw_targets``)."""


class FpgaConfigError(FpgaError, ValueError):
    """An accelerator config that cannot be built: a bad field, buffers that do not fit the device, a tau above the datapath."""


class InstructionError(FpgaError, ValueError):
    """An instruction or instruction stream that cannot be decoded: a bad opcode, a field out of range, a truncated stream."""


class StreamError(FpgaError):
    """An instruction stream the accelerator refuses to run: a dependency-token violation, a deadlock, a data race or a buffer overflow."""


class FpgaLayerError(FpgaError, ValueError):
    """A layer the accelerator cannot run: float inputs, a kernel, stride, padding or tau it does not take, or sums too wide for its accumulators."""
