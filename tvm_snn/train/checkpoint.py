"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain data::

    {
        "format": "tvm-snn-checkpoint", "version": 1,
        "model": model.state_dict(),        # with every SNN buffer: subset, memory, step, ...
        "optimizer": optimizer.state_dict(),
        "step": global_step,                # optimizer steps done
        "rng": [torch RNG state per rank],
        "train_config": TrainConfig.to_dict(),
        "model_spec": ModelSpec.to_dict() or None,
        "data_spec": DataSpec.to_dict() or None,
        "history": [{"epoch", "loss", "train_accuracy", "test_accuracy", "seconds"}, ...],
    }

The learning rate is a pure function of the step and the data order a pure
function of the seed, the epoch and the step, so these entries are the whole
training state: a resumed run continues bit-exactly.
"""

import os
import pickle
import zipfile
from pathlib import Path

import torch

from tvm_snn.errors import ArtifactError

FORMAT = "tvm-snn-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "last.pt"
"""File name of the latest checkpoint in a run folder."""

TMP_SUFFIX = ".tmp"


def atomic_write(path, write):
    """Write a file atomically: ``write(handle)`` to a temporary file, fsync, ``os.replace``.

    A reader sees either the old file or the complete new one, never a partial
    write; on failure the temporary file is removed and the old file is kept.

    Parameters
    ----------
    path : str or Path
        The destination; its folder is created.
    write : callable
        ``write(binary_file_handle)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_checkpoint(state, path):
    """Save a checkpoint dict atomically, stamped with the format and version.

    Parameters
    ----------
    state : dict
        Tensors and plain data only (it is read back with ``weights_only=True``).
    path : str or Path
        The destination file.
    """
    stamped = {"format": FORMAT, "version": FORMAT_VERSION, **state}
    atomic_write(path, lambda handle: torch.save(stamped, handle))


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint with ``weights_only=True``.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_checkpoint`.
    map_location : str or torch.device
        Where to put the tensors.

    Returns
    -------
    dict

    Raises
    ------
    ArtifactError
        If the file is missing, corrupt, or not a tvm-snn checkpoint of this version.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (
        RuntimeError,
        pickle.UnpicklingError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
    ) as error:
        raise ArtifactError(f"checkpoint {path} is corrupt or unsafe: {error}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a tvm-snn checkpoint")
    if state.get("version") != FORMAT_VERSION:
        raise ArtifactError(
            f"checkpoint {path} has version {state.get('version')}, expected {FORMAT_VERSION}"
        )
    return state


def load_model(path, map_location="cpu"):
    """Rebuild the model of a checkpoint and load its weights.

    Parameters
    ----------
    path : str or Path
        A checkpoint written by :func:`tvm_snn.train.fit` with a ``spec``.
    map_location : str or torch.device
        Where to put the tensors.

    Returns
    -------
    tuple
        ``(model, checkpoint)``: the model in eval mode, and the checkpoint dict.

    Raises
    ------
    ArtifactError
        If the checkpoint is unreadable, has no model spec, or does not fit the model.
    """
    from tvm_snn.train.models import ModelSpec

    state = load_checkpoint(path, map_location)
    if state.get("model_spec") is None:
        raise ArtifactError(
            f"checkpoint {path} has no model spec; rebuild the model in Python and load "
            f"checkpoint['model'] into it"
        )
    model = ModelSpec.from_dict(state["model_spec"]).build()
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise ArtifactError(f"checkpoint {path} does not fit its model spec: {error}") from None
    return model.eval(), state
