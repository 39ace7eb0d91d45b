"""``tvm_snn.deploy``: run a compiled model on a board over TVM RPC, check it, time it.

The steps, each refused with a :class:`~tvm_snn.errors.DeployError` that says
which one failed:

1. the artifact's manifest and sha256 are checked on the host (an
   in-memory ``CompiledModel`` is exported first);
2. connect to the board's server (``"host:port"``), or ask a tracker for a
   board by key (refused at once when the tracker knows no such key);
3. ask the board its architecture (``python -m tvm_snn.deploy.server``
   answers) and refuse a mismatch before anything is uploaded;
4. upload the artifact and its manifest, and check the artifact's sha256 on
   the board before loading it;
5. run it on the given or random inputs, and time it on the board;
6. compare the outputs with the host's reference run (the artifact itself
   when it runs here, or ``reference=``) at the manifest's tolerance.
"""

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tvm_snn.deploy.server import ARCH_FUNC, SHA256_FUNC
from tvm_snn.errors import ConfigError, DeployError, SNNError

DEFAULT_REPEAT = 10
SESSION_TIMEOUT_S = 120.0
TRACKER_RETRIES = 3
ARTIFACT_NAME = "model.so"


@dataclass(frozen=True)
class Comparison:
    """The board's outputs against the host's reference run.

    Attributes
    ----------
    matched : bool
        Every output within ``rtol``/``atol`` of the reference.
    max_abs_diff : float
        The largest difference over all outputs.
    rtol, atol : float
        The manifest's tolerance.
    reference : str
        What the reference was.
    """

    matched: bool
    max_abs_diff: float
    rtol: float
    atol: float
    reference: str


@dataclass
class DeployResult:
    """What :func:`deploy` found on the board.

    Attributes
    ----------
    outputs : list of numpy.ndarray
        The board's outputs.
    inputs : list of numpy.ndarray
        The inputs they came from.
    median_ms : float
        The median time per run on the board.
    times_ms : list of float
        Every timed run.
    arch : str
        The board's architecture.
    remote : str
        The server or tracker reached.
    comparison : Comparison or None
        None when there was no host reference (``note`` says why).
    note : str
    """

    outputs: list
    inputs: list
    median_ms: float
    times_ms: list
    arch: str
    remote: str
    comparison: Comparison | None = None
    note: str = ""
    manifest: dict = field(default_factory=dict, repr=False)


def _address(text, what):
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"{what} must be 'host:port', got {text!r}")
    return host, int(port)


def describe_remote(remote):
    """Check ``remote``'s form; return how to name it in messages.

    Raises
    ------
    ConfigError
        Neither ``"host:port"`` nor ``{"tracker": "host:port", "key": k}``.
    """
    if isinstance(remote, dict):
        if set(remote) != {"tracker", "key"}:
            raise ConfigError(
                f"a tracker remote is {{'tracker': 'host:port', 'key': k}}, got {remote!r}"
            )
        _address(remote["tracker"], "the tracker")
        return f"{remote['tracker']} (key {remote['key']!r})"
    if not isinstance(remote, str):
        raise ConfigError(f"remote must be 'host:port' or a tracker dict, got {remote!r}")
    _address(remote, "remote")
    return remote


def _artifact_path(model, scratch):
    """The artifact's path: exported to ``scratch`` when ``model`` is a CompiledModel."""
    from tvm_snn.compiled import CompiledModel

    if isinstance(model, CompiledModel):
        return model.export_library(os.path.join(scratch, ARTIFACT_NAME))
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    raise ConfigError(
        f"deploy takes a CompiledModel or an artifact path, got {type(model).__name__}"
    )


def connect(remote, timeout_s):
    """An RPC session to ``remote``: ``"host:port"``, or ``{"tracker": "host:port", "key": k}``.

    Raises
    ------
    ConfigError
        A malformed ``remote``.
    DeployError
        No server or tracker there, or no board with that key.
    """
    from tvm import rpc

    session_timeout = max(1, int(np.ceil(timeout_s)))
    if isinstance(remote, dict):
        if set(remote) != {"tracker", "key"}:
            raise ConfigError(
                f"a tracker remote is {{'tracker': 'host:port', 'key': k}}, got {remote!r}"
            )
        host, port = _address(remote["tracker"], "the tracker")
        key = str(remote["key"])
        try:
            tracker = rpc.connect_tracker(host, port)
            queues = tracker.summary().get("queue_info", {})
        except Exception as err:  # TVM raises RuntimeError/OSError/TVMError here
            raise DeployError(f"no RPC tracker at {host}:{port}: {err}") from None
        if key not in queues:
            raise DeployError(
                f"the tracker at {host}:{port} has no board with key {key!r} (it has {sorted(queues)})"
            )
        try:
            return tracker.request(key, session_timeout=session_timeout, max_retry=TRACKER_RETRIES)
        except Exception as err:
            raise DeployError(
                f"the tracker at {host}:{port} gave no {key!r} board: {err}"
            ) from None
    host, port = _address(remote, "remote")
    try:
        return rpc.connect(host, port, session_timeout=session_timeout)
    except Exception as err:
        raise DeployError(f"no RPC server at {host}:{port}: {err}") from None


def _remote_call(what, call, *args):
    try:
        return call(*args)
    except SNNError:
        raise
    except Exception as err:  # the board's error comes back as a TVM error
        text = str(err)
        if "Timeout" in text or "timeout" in text:
            raise DeployError(
                f"{what}: the board's session timed out ({text.splitlines()[0]})"
            ) from None
        raise DeployError(f"{what} failed on the board: {text}") from None


def check_board(session, manifest, where):
    """Refuse a board whose architecture is not the artifact's (before any upload)."""
    try:
        arch_func = session.get_function(ARCH_FUNC)
    except Exception:
        raise DeployError(
            f"the server at {where} is not a tvm-snn board server, so its architecture cannot be "
            "checked: start it with `python -m tvm_snn.deploy.server`"
        ) from None
    arch = str(_remote_call("asking the board's architecture", arch_func))
    if arch != manifest["arch"]:
        raise DeployError(
            f"the artifact is built for {manifest['arch']}, the board at {where} is {arch}: "
            f"compile it for the board's target"
        )
    return arch


def _upload(session, path, manifest):
    from tvm_snn.compiled import manifest_path

    name = Path(path).name
    _remote_call("uploading the artifact", session.upload, path)
    _remote_call("uploading the manifest", session.upload, manifest_path(path))
    digest = _remote_call(
        "hashing the artifact on the board", session.get_function(SHA256_FUNC), name
    )
    if digest != manifest["sha256"]:
        raise DeployError(
            f"the artifact arrived changed on the board: sha256 {digest} != the manifest's {manifest['sha256']}"
        )
    return name


def _numpy_outputs(value):
    import tvm

    if isinstance(value, tvm.runtime.Tensor):
        return [value.numpy()]
    return [item for part in value for item in _numpy_outputs(part)]


def _compare(outputs, expected, manifest, reference):
    tolerance = manifest.get("tolerance", {})
    rtol, atol = float(tolerance.get("rtol", 0.0)), float(tolerance.get("atol", 0.0))
    if len(outputs) != len(expected):
        raise DeployError(f"the board gave {len(outputs)} outputs, the reference {len(expected)}")
    worst, matched = 0.0, True
    for got, want in zip(outputs, expected, strict=True):
        want = np.asarray(want)
        if got.shape != want.shape:
            raise DeployError(
                f"the board gave an output of shape {got.shape}, the reference {want.shape}"
            )
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        worst = max(worst, float(diff.max(initial=0.0)))
        matched &= bool(np.allclose(got, want, rtol=rtol, atol=atol))
    return Comparison(matched, worst, rtol, atol, reference)


def _reference(model, manifest, path, reference):
    """The host's reference (a callable) and what it is, or (None, why there is none)."""
    from tvm_snn.compiled import CompiledModel, load
    from tvm_snn.target import runs_on_host

    if reference is not None:
        return reference, "the given reference"
    if not runs_on_host(manifest["target"]):
        return None, f"no host reference: the artifact is for {manifest['arch']}; pass reference="
    if isinstance(model, CompiledModel):
        return model, "the compiled model on the host"
    return load(path), "the artifact on the host"


def deploy(
    model,
    remote,
    inputs=None,
    reference=None,
    repeat=DEFAULT_REPEAT,
    timeout_s=SESSION_TIMEOUT_S,
    check=True,
):
    """Upload a compiled model to a board, run it, compare it with the host, and time it.

    Parameters
    ----------
    model : CompiledModel, str or Path
        A model, or an artifact written by ``export_library`` (with its manifest).
    remote : str or dict
        ``"host:port"`` of a board's server, or ``{"tracker": "host:port", "key": k}``.
    inputs : sequence of numpy.ndarray, optional
        The inputs; random ones (``CompiledModel.random_inputs``) by default.
    reference : callable, optional
        The host's model (a ``CompiledModel`` for the host, or any callable
        on the inputs); by default the artifact itself when it runs here.
    repeat : int
        Timed runs on the board.
    timeout_s : float
        Seconds the board's session may last.
    check : bool
        Raise when the outputs do not match the reference.

    Returns
    -------
    DeployResult

    Raises
    ------
    ArtifactError
        A missing or corrupt artifact or manifest.
    InputError
        Inputs that do not match the signature.
    ConfigError
        A malformed ``remote`` or ``repeat``.
    DeployError
        No server, no board with the key, another architecture, a changed
        upload, a failure or timeout on the board, or (with ``check``)
        outputs that do not match.
    """
    import tvm
    from tvm import relax

    from tvm_snn.compiled import check_inputs, random_inputs, read_manifest
    from tvm_snn.importers import InputSpec

    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ConfigError(f"repeat must be a positive integer, got {repeat!r}")
    where = describe_remote(remote)
    with tempfile.TemporaryDirectory(prefix="tvm-snn-deploy-") as scratch:
        path = _artifact_path(model, scratch)
        manifest = read_manifest(path)  # the host's sha256 check
        if "fpga" in manifest:
            raise DeployError(
                "this model runs convs on the snn-fpga accelerator, which TVM's runtime on a board "
                "cannot call; run it here with cm.accelerator.use_device(RemoteDevice('host:port')) "
                "to send its accelerator calls to the board (hw_targets.driver.remote)"
            )
        specs = [InputSpec.from_json(item) for item in manifest["inputs"]]
        arrays = check_inputs(specs, list(inputs)) if inputs is not None else random_inputs(specs)
        session = connect(remote, timeout_s)
        arch = check_board(session, manifest, where)
        name = _upload(session, path, manifest)
        library = _remote_call("loading the artifact", session.load_module, name)
        device = session.cpu()
        vm = _remote_call("starting the VM", relax.VirtualMachine, library, device)
        args = [_remote_call("sending an input", tvm.runtime.tensor, a, device) for a in arrays]
        outputs = _numpy_outputs(_remote_call("running the model", vm["main"], *args))
        timer = vm.time_evaluator("main", device, number=1, repeat=repeat)
        times = [t * 1e3 for t in _remote_call("timing the model", timer, *args).results]
        result = DeployResult(
            outputs, arrays, float(np.median(times)), times, arch, where, manifest=manifest
        )
        return _finish(result, *_reference(model, manifest, path, reference), check)


def _finish(result, reference, what, check):
    if reference is None:
        result.note = what
        return result
    expected = reference(*result.inputs)
    expected = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    result.comparison = _compare(result.outputs, expected, result.manifest, what)
    if check and not result.comparison.matched:
        raise DeployError(
            f"the board's outputs differ from {what} by up to {result.comparison.max_abs_diff:.3g} "
            f"(tolerance rtol={result.comparison.rtol}, atol={result.comparison.atol})"
        )
    return result
