"""``CompiledModel``: run, time, report, save and reload a compiled model.

An artifact is a shared library plus a JSON manifest beside it
(``<path>.manifest.json``) that records the target, the input signature, the
layer report and the library's sha256. :func:`load` checks all of them.
"""

import contextlib
import json
import os
import sys

import numpy as np
import tvm
import tvm_ffi
from tvm import relax

from relay_passes.report import LayerReport, format_table
from tvm_snn.benchmarking import time_interleaved
from tvm_snn.deploy.hashing import file_sha256
from tvm_snn.errors import (
    ArtifactError,
    FpgaError,
    InputError,
    NotRunnableError,
    StandaloneError,
    TuningError,
)
from tvm_snn.importers import InputSpec
from tvm_snn.target import runs_on_host, target_arch
from tvm_snn.threads import default_threads, running_on
from tvm_snn.toolchain import fcompile_for
from tvm_snn.tuning.plans import KernelChoice, format_tuning

MANIFEST_SUFFIX = ".manifest.json"
FPGA_SUFFIX = ".fpga.npz"
MANIFEST_FORMAT = "tvm-snn-artifact"
MANIFEST_VERSION = 1
STDERR_FD = 2
TVM_ALIGNMENT = 64  # bytes: what TVM's kernels assume of a buffer argument by default
# How far a board's outputs may lie from the host's run of the same model (the manifest's
# "tolerance", which tvm_snn.deploy checks): another instruction set sums floats in
# another order and may fuse multiply-adds. Integer paths match exactly.
DEPLOY_RTOL = 1e-4
DEPLOY_ATOL = 1e-4


def manifest_path(path):
    """Return the manifest path that belongs to artifact ``path``."""
    return os.fspath(path) + MANIFEST_SUFFIX


@contextlib.contextmanager
def _native_stderr_silenced():
    """Silence C++ stderr for a call: TVM 0.27 logs a warning per memory scope on save/load."""
    sys.stderr.flush()
    saved = os.dup(STDERR_FD)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, STDERR_FD)
        yield
    finally:
        os.dup2(saved, STDERR_FD)
        os.close(saved)
        os.close(devnull)


def _to_numpy(value):
    if isinstance(value, tvm.runtime.Tensor):
        return np.from_dlpack(value)  # zero-copy: the array keeps the tensor alive
    if isinstance(value, (list, tuple)) or type(value).__name__ == "Array":
        return tuple(_to_numpy(item) for item in value)
    raise TypeError(f"unexpected VM output of type {type(value).__name__}")


def check_inputs(specs, args):
    """The arguments as arrays, checked against the input signature ``specs``.

    ``args`` is the inputs positionally, or one dict by name.

    Raises
    ------
    InputError
        Wrong number, names, shape or dtype of inputs.
    """
    if len(args) == 1 and isinstance(args[0], dict):
        given = args[0]
        missing = [spec.name for spec in specs if spec.name not in given]
        extra = sorted(set(given) - {spec.name for spec in specs})
        if missing or extra:
            raise InputError(f"inputs by name: missing {missing}, unexpected {extra}")
        args = [given[spec.name] for spec in specs]
    if len(args) != len(specs):
        names = [spec.name for spec in specs]
        raise InputError(f"the model takes {len(specs)} input(s) {names}, got {len(args)}")
    arrays = []
    for spec, value in zip(specs, args, strict=True):
        array = np.asarray(value)
        if array.dtype != np.dtype(spec.dtype):
            raise InputError(
                f"input {spec.name!r} must be {spec.dtype}, got {array.dtype}; cast it with .astype({spec.dtype!r})"
            )
        if array.shape != spec.shape:
            raise InputError(f"input {spec.name!r} must have shape {spec.shape}, got {array.shape}")
        arrays.append(array)
    return arrays


def random_inputs(specs, seed=0):
    """Random arrays for the input signature ``specs``: standard normal floats, zero integers."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in specs:
        if np.issubdtype(np.dtype(spec.dtype), np.floating):
            arrays.append(rng.standard_normal(spec.shape).astype(spec.dtype))
        else:
            arrays.append(np.zeros(spec.shape, dtype=spec.dtype))
    return arrays


class CompiledModel:
    """A model compiled by :func:`tvm_snn.compile` or reloaded by :func:`load`.

    Parameters
    ----------
    module : tvm.runtime.Module or relax.VMExecutable
        The compiled code.
    target : dict
        The target's JSON form.
    inputs : list of InputSpec
        The input signature.
    layers : list of LayerReport
        What the SNN passes decided, one entry per conv.
    metadata_problems : list of str, optional
        Where the detector and the training frontend's metadata disagree.
    unaligned_inputs : sequence of str, optional
        The inputs the compiled code may read at any element-aligned address
        (see :mod:`relay_passes.unaligned_inputs`): a C-contiguous array is
        passed as it is, not copied. The others are copied into an aligned
        tensor unless they are 64-byte aligned already.
    tuning : sequence of tvm_snn.tuning.plans.KernelChoice, optional
        Per tunable kernel, when compiled with a ``tuning_db``: tuned or hand
        plan, and the measured times of each.
    scheduled : tvm.IRModule, optional
        The scheduled Relax module the code was built from (kept by
        :func:`tvm_snn.compile`, not by :func:`load`): what
        :meth:`export_standalone` turns into a C program.
    accelerator : hw_targets.byoc.FpgaClaims, optional
        With an ``snn-fpga`` target: the convs the accelerator runs, as
        compiled programs. Their packed functions are registered in this
        process; :meth:`export_library` writes them beside the library.

    Notes
    -----
    A model runs on :attr:`num_threads` TVM threads: by default all the
    cores this process may use (or the target's ``num-cores``, when it has
    one, at most those; or ``TVM_NUM_THREADS`` when set). Set
    ``cm.num_threads = n`` to choose another count.
    """

    def __init__(
        self,
        module,
        target,
        inputs,
        layers,
        metadata_problems=(),
        unaligned_inputs=(),
        tuning=(),
        scheduled=None,
        accelerator=None,
    ):
        self._module = module
        self.target = dict(target)
        self._num_threads = default_threads(self.target.get("num-cores"))
        self.inputs = list(inputs)
        self.snn_layers = list(layers)
        self.metadata_problems = list(metadata_problems)
        self.unaligned_inputs = tuple(unaligned_inputs)
        self.tuning = list(tuning)
        self._scheduled = scheduled
        self.accelerator = accelerator
        self._vm = None
        self._staging = [None] * len(
            self.inputs
        )  # aligned input tensors (and views), made when needed
        self._arch = target_arch(self.target)  # parsing a target costs ~0.15 ms: once

    @property
    def num_threads(self):
        """TVM threads the model runs on (settable: a positive integer)."""
        return self._num_threads

    @num_threads.setter
    def num_threads(self, count):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InputError(f"num_threads must be a positive integer, got {count!r}")
        self._num_threads = count

    @property
    def arch(self):
        """The target architecture: ``"x86_64"``, ``"aarch64"`` or ``"armv7"``."""
        return self._arch

    def _machine(self):
        if self._vm is not None:
            return self._vm
        if not runs_on_host(self.target):
            raise NotRunnableError(
                f"this model is compiled for {self.arch} and cannot run on this machine; "
                "export_library() it and run it on the device"
            )
        self._vm = relax.VirtualMachine(self._module, tvm.cpu())["main"]  # looked up once
        return self._vm

    def _staged(self, position):
        """The aligned tensor input ``position`` is copied into (and a NumPy view of it)."""
        if self._staging[position] is None:
            spec = self.inputs[position]
            tensor = tvm.runtime.empty(spec.shape, spec.dtype)
            self._staging[position] = (tensor, np.from_dlpack(tensor))
        return self._staging[position]

    def _stage(self, arrays):
        """The VM's arguments: each input array itself where the code can read it, else an aligned copy."""
        tensors = []
        for position, (spec, array) in enumerate(zip(self.inputs, arrays, strict=True)):
            alignment = array.itemsize if spec.name in self.unaligned_inputs else TVM_ALIGNMENT
            if (
                array.flags.c_contiguous
                and array.flags.writeable
                and array.ctypes.data % alignment == 0
            ):
                tensors.append(
                    tvm_ffi.from_dlpack(array, require_alignment=alignment, require_contiguous=True)
                )
            else:  # strided, read-only (DLPack cannot say so) or misaligned: one memcpy
                tensor, view = self._staged(position)
                np.copyto(view, array)
                tensors.append(tensor)
        return tensors

    def _check(self, args):
        return check_inputs(self.inputs, args)

    def __call__(self, *args):
        """Run the model: NumPy arrays in (positional, or one dict by name), NumPy out.

        Returns
        -------
        numpy.ndarray or tuple of numpy.ndarray
            One array, or a tuple when the model has several outputs. The
            arrays share memory with TVM's outputs (no copy). The inputs are
            read in place when the compiled code allows it (see
            ``unaligned_inputs``), else copied into buffers the model reuses:
            a model is not thread-safe.

        Raises
        ------
        InputError
            Wrong number, shape or dtype of inputs.
        NotRunnableError
            The model was compiled for another architecture.
        """
        arrays = self._check(args)
        machine = self._machine()
        with running_on(self._num_threads):
            return _to_numpy(machine(*self._stage(arrays)))

    def random_inputs(self, seed=0):
        """Return random inputs that match the signature (standard normal floats)."""
        return random_inputs(self.inputs, seed)

    def benchmark(self, inputs=None, repeat=20, warmup=3):
        """Time the model on this machine.

        Parameters
        ----------
        inputs : list of numpy.ndarray, optional
            Defaults to :meth:`random_inputs`.
        repeat : int
            Number of timed runs.
        warmup : int
            Untimed runs first.

        Returns
        -------
        dict
            ``median_ms``, ``mean_ms``, ``std_ms``, ``min_ms``, ``repeat`` and
            ``threads`` (TVM's thread count; see :mod:`tvm_snn.threads`).
        """
        arrays = self._check(inputs if inputs is not None else self.random_inputs())
        main = self._machine()
        tensors = self._stage(arrays)
        with running_on(self._num_threads) as threads:
            stats = time_interleaved({"model": lambda: main(*tensors)}, repeat, warmup)["model"]
        return {**stats, "threads": threads}

    def report(self):
        """Return the compile report: target, inputs and the per-conv table."""
        lines = [f"target: {json.dumps(self.target)}"]
        lines += [f"input {spec.name}: {spec.dtype}{list(spec.shape)}" for spec in self.inputs]
        lines.append(format_table(self.snn_layers))
        checked = [layer for layer in self.snn_layers if layer.frontend_tau is not None]
        if checked or self.metadata_problems:
            lines.append(
                f"frontend metadata: {len(checked)} conv(s) matched, {len(self.metadata_problems)} disagreement(s)"
            )
            lines += [f"  {problem}" for problem in self.metadata_problems]
        if self.tuning:
            lines.append(format_tuning(self.tuning))
        if self.accelerator is not None:
            lines.append(self.accelerator.summary())
        return "\n".join(lines)

    def export_library(self, path):
        """Write the artifact (a shared library for the target) and its manifest.

        Cross targets are linked with Debian's cross gcc.

        Raises
        ------
        ToolchainError
            When the cross compiler for the target is missing.
        """
        path = os.fspath(path)
        fcompile = fcompile_for(self.arch)
        with _native_stderr_silenced():
            if fcompile is None:
                self._module.export_library(path)
            else:
                self._module.export_library(path, fcompile=fcompile)
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "target": self.target,
            "arch": self.arch,
            "inputs": [spec.to_json() for spec in self.inputs],
            "layers": [layer.to_json() for layer in self.snn_layers],
            "metadata_problems": self.metadata_problems,
            "unaligned_inputs": list(self.unaligned_inputs),
            "tuning": [choice.to_json() for choice in self.tuning],
            "tolerance": {"rtol": DEPLOY_RTOL, "atol": DEPLOY_ATOL},
            "sha256": file_sha256(path),
            "tvm_version": tvm.__version__,
        }
        if self.accelerator is not None:
            sidecar = fpga_path(path)
            self.accelerator.save(sidecar)
            manifest["fpga"] = {
                "file": os.path.basename(sidecar),
                "spec": self.accelerator.spec.name,
                "sha256": file_sha256(sidecar),
            }
        with open(manifest_path(path), "w") as handle:
            json.dump(manifest, handle, indent=2)
        return path

    def export_standalone(self, folder, build=True):
        """Write the model as a C program that needs only libc (see :mod:`tvm_snn.deploy.standalone`).

        Parameters
        ----------
        folder : str or Path
            A new or empty folder.
        build : bool
            Build it at once with this target's gcc (Debian's cross gcc for ARM).

        Returns
        -------
        tvm_snn.deploy.standalone.StandaloneArtifact

        Raises
        ------
        StandaloneError
            The model was loaded from an artifact (which keeps no IR), or has
            control flow, dynamic shapes or an op the driver cannot run, or
            the build failed.
        """
        from tvm_snn.deploy.standalone import export_standalone

        if self.accelerator is not None:
            raise StandaloneError(
                "this model runs convs on the snn-fpga accelerator, whose runtime is Python "
                "(the simulator or a board's driver); the standalone C program runs CPU builds only"
            )
        if self._scheduled is None:
            raise StandaloneError(
                "this model was loaded from an artifact, which keeps no IR; "
                "compile it with tvm_snn.compile to export it standalone"
            )
        names = ", ".join(f"{spec.name}{list(spec.shape)}" for spec in self.inputs)
        title = f"{self.arch} model of input(s) {names}"
        return export_standalone(self._scheduled, self._module, self.target, folder, title, build)


def read_manifest(path):
    """Read and validate the manifest of artifact ``path``.

    Raises
    ------
    ArtifactError
        Missing or unreadable manifest, wrong format, or a library whose
        sha256 differs from the one recorded.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ArtifactError(f"artifact not found: {path}")
    mpath = manifest_path(path)
    try:
        with open(mpath) as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        raise ArtifactError(f"manifest not found beside the artifact: {mpath}") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ArtifactError(f"manifest {mpath} is not valid JSON: {err}") from None
    required = ("format", "version", "target", "inputs", "layers", "sha256")
    missing = (
        [key for key in required if key not in manifest]
        if isinstance(manifest, dict)
        else list(required)
    )
    if missing or manifest.get("format") != MANIFEST_FORMAT:
        raise ArtifactError(f"manifest {mpath} is not a tvm-snn manifest (missing {missing})")
    if manifest["version"] != MANIFEST_VERSION:
        raise ArtifactError(
            f"manifest {mpath} has version {manifest['version']}, expected {MANIFEST_VERSION}"
        )
    unaligned = manifest.get("unaligned_inputs", [])
    names = {item.get("name") for item in manifest["inputs"] if isinstance(item, dict)}
    if (
        not isinstance(unaligned, list)
        or not all(isinstance(n, str) for n in unaligned)
        or not set(unaligned) <= names
    ):
        raise ArtifactError(
            f"manifest {mpath}: unaligned_inputs {unaligned!r} must be a list of the input names {sorted(names)}"
        )
    try:
        manifest["tuning"] = [KernelChoice.from_json(item) for item in manifest.get("tuning", [])]
    except (TuningError, TypeError) as err:
        raise ArtifactError(f"manifest {mpath}: bad tuning entry: {err}") from None
    actual = file_sha256(path)
    if actual != manifest["sha256"]:
        raise ArtifactError(
            f"artifact {path} does not match its manifest: sha256 {actual} != recorded {manifest['sha256']}"
        )
    return manifest


def load(path):
    """Load an artifact written by :meth:`CompiledModel.export_library`.

    Returns
    -------
    CompiledModel

    Raises
    ------
    ArtifactError
        See :func:`read_manifest`; also when TVM cannot load the library.
    NotRunnableError
        The artifact was built for another architecture.
    """
    manifest = read_manifest(path)
    target = manifest["target"]
    if not runs_on_host(target):
        raise NotRunnableError(
            f"artifact {os.fspath(path)} is built for {target_arch(target)}; load it on that device"
        )
    try:
        with _native_stderr_silenced():
            module = tvm.runtime.load_module(os.fspath(path))
    except Exception as err:  # TVM raises a plain error for a bad library
        raise ArtifactError(f"TVM cannot load {os.fspath(path)}: {err}") from err
    inputs = [InputSpec.from_json(item) for item in manifest["inputs"]]
    layers = [LayerReport.from_json(item) for item in manifest["layers"]]
    problems = manifest.get("metadata_problems", [])
    accelerator = _load_accelerator(path, manifest) if "fpga" in manifest else None
    return CompiledModel(
        module,
        target,
        inputs,
        layers,
        problems,
        manifest.get("unaligned_inputs", []),
        manifest["tuning"],
        accelerator=accelerator,
    )


def fpga_path(path):
    """The accelerator's functions file beside artifact ``path``."""
    return os.fspath(path) + FPGA_SUFFIX


def _load_accelerator(path, manifest):
    """Check and register the accelerator functions an artifact carries."""
    from hw_targets.byoc import FpgaClaims

    entry = manifest["fpga"]
    sidecar = os.path.join(
        os.path.dirname(os.path.abspath(os.fspath(path))), str(entry.get("file", ""))
    )
    if not os.path.isfile(sidecar):
        raise ArtifactError(
            f"the artifact runs convs on the FPGA, but its functions file {sidecar} is missing"
        )
    actual = file_sha256(sidecar)
    if actual != entry.get("sha256"):
        raise ArtifactError(
            f"{sidecar} does not match the manifest: sha256 {actual} != recorded {entry.get('sha256')}"
        )
    try:
        claims = FpgaClaims.from_file(sidecar)
    except FpgaError as err:
        raise ArtifactError(f"cannot read the accelerator functions: {err}") from None
    claims.register()
    return claims
