"""Tests of checkpoint files: atomic writes, safe and strict loading."""

import pytest
import torch

from tvm_snn.errors import ArtifactError
from tvm_snn.train import load_checkpoint, load_model, save_checkpoint
from tvm_snn.train.checkpoint import FORMAT, FORMAT_VERSION, atomic_write


class Payload:
    """Not loadable with weights_only=True."""


def test_round_trip_keeps_tensors_and_plain_data(tmp_path):
    path = tmp_path / "sub" / "last.pt"
    save_checkpoint({"step": 3, "model": {"w": torch.arange(4)}, "history": [{"loss": 0.5}]}, path)
    state = load_checkpoint(path)
    assert (state["format"], state["version"], state["step"]) == (FORMAT, FORMAT_VERSION, 3)
    assert torch.equal(state["model"]["w"], torch.arange(4))
    assert state["history"] == [{"loss": 0.5}]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1}, path)

    def crash(handle):
        handle.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_missing_corrupt_foreign_and_unsafe_files_are_refused(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a zip")
    with pytest.raises(ArtifactError, match="corrupt"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(1)}, foreign)
    with pytest.raises(ArtifactError, match="not a tvm-snn checkpoint"):
        load_checkpoint(foreign)
    old = tmp_path / "old.pt"
    torch.save({"format": FORMAT, "version": FORMAT_VERSION + 1}, old)
    with pytest.raises(ArtifactError, match="version"):
        load_checkpoint(old)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": FORMAT, "version": FORMAT_VERSION, "x": Payload()}, unsafe)
    with pytest.raises(ArtifactError, match="unsafe"):
        load_checkpoint(unsafe)


def test_load_model_needs_a_model_spec(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {}, "model_spec": None}, path)
    with pytest.raises(ArtifactError, match="no model spec"):
        load_model(path)
