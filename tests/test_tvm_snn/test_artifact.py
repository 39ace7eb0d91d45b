"""export_library / load round trips, manifest checks and cross artifacts."""

import hashlib
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import tvm_snn
from tvm_snn.compiled import manifest_path
from tvm_snn.errors import ArtifactError, NotRunnableError

from onnx_models import plain_cnn

# readelf's "Machine:" line for each arch.
ELF_MACHINE = {"aarch64": "AArch64", "armv7": "ARM"}
ELF_CLASS = {"aarch64": "ELF64", "armv7": "ELF32"}


@pytest.fixture(scope="module")
def model():
    return plain_cnn()


@pytest.fixture(scope="module")
def host_artifact(model, tmp_path_factory):
    cm = tvm_snn.compile(model, target="x86")
    path = tmp_path_factory.mktemp("host") / "model.so"
    cm.export_library(path)
    return cm, path


def _copy(path, tmp_path):
    dest = tmp_path / "copy.so"
    shutil.copy(path, dest)
    shutil.copy(manifest_path(path), manifest_path(dest))
    return dest


def test_host_round_trip(host_artifact):
    cm, path = host_artifact
    loaded = tvm_snn.load(path)
    x = np.random.default_rng(0).standard_normal((1, 4, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), cm(x))
    assert loaded.inputs == cm.inputs and loaded.target == cm.target
    assert loaded.report() == cm.report()
    manifest = json.loads(open(manifest_path(path)).read())
    assert manifest["target"] == cm.target and len(manifest["sha256"]) == 64


def test_changed_library_is_refused(host_artifact, tmp_path):
    dest = _copy(host_artifact[1], tmp_path)
    with open(dest, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match="sha256"):
        tvm_snn.load(dest)


def test_missing_or_corrupt_manifest_is_refused(host_artifact, tmp_path):
    dest = _copy(host_artifact[1], tmp_path)
    with open(manifest_path(dest), "w") as handle:
        handle.write("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        tvm_snn.load(dest)
    with open(manifest_path(dest), "w") as handle:
        json.dump({"format": "something-else"}, handle)
    with pytest.raises(ArtifactError, match="not a tvm-snn manifest"):
        tvm_snn.load(dest)
    os.remove(manifest_path(dest))
    with pytest.raises(ArtifactError, match="manifest not found"):
        tvm_snn.load(dest)
    with pytest.raises(ArtifactError, match="artifact not found"):
        tvm_snn.load(tmp_path / "nothing.so")


def test_garbage_library_with_matching_manifest_is_refused(host_artifact, tmp_path):
    dest = _copy(host_artifact[1], tmp_path)
    dest.write_bytes(b"this is not a shared object")
    manifest = json.loads(open(manifest_path(dest)).read())
    manifest["sha256"] = hashlib.sha256(dest.read_bytes()).hexdigest()
    with open(manifest_path(dest), "w") as handle:
        json.dump(manifest, handle)
    with pytest.raises(ArtifactError, match="TVM cannot load"):
        tvm_snn.load(dest)


@pytest.mark.parametrize(
    "tuning",
    [
        3,
        ["x"],
        [{"label": "k"}],
        [{"label": 1, "tuned": True, "hand_ms": None, "chosen_ms": None, "plan": ""}],
    ],
)
def test_manifest_with_a_bad_tuning_entry_is_refused(host_artifact, tmp_path, tuning):
    with pytest.raises(ArtifactError, match="tuning"):
        tvm_snn.load(_with_manifest_entry(host_artifact[1], tmp_path, "tuning", tuning))


def _with_manifest_entry(path, tmp_path, key, value):
    """A copy of the artifact whose manifest has ``key`` set to ``value``."""
    dest = _copy(path, tmp_path)
    manifest = json.loads(open(manifest_path(dest)).read())
    manifest[key] = value
    with open(manifest_path(dest), "w") as handle:
        json.dump(manifest, handle)
    return dest


@pytest.mark.parametrize("unaligned", ["x", ["not-an-input"], [3]])
def test_manifest_with_bad_unaligned_inputs_is_refused(host_artifact, tmp_path, unaligned):
    with pytest.raises(ArtifactError, match="unaligned_inputs"):
        tvm_snn.load(
            _with_manifest_entry(host_artifact[1], tmp_path, "unaligned_inputs", unaligned)
        )


def test_manifest_keeps_the_inputs_read_in_place(host_artifact):
    cm, path = host_artifact
    assert cm.unaligned_inputs == (cm.inputs[0].name,)  # the first op is a conv kernel
    assert tvm_snn.load(path).unaligned_inputs == cm.unaligned_inputs


@pytest.mark.parametrize(("preset", "arch"), [("aarch64", "aarch64"), ("pynq", "armv7")])
def test_cross_artifacts_are_elf_for_the_right_machine(model, tmp_path, preset, arch):
    cm = tvm_snn.compile(model, target=preset)
    assert cm.arch == arch
    with pytest.raises(NotRunnableError, match=arch):
        cm(np.zeros((1, 4, 12, 12), np.float32))
    path = tmp_path / f"model_{arch}.so"
    cm.export_library(path)
    header = subprocess.run(
        ["readelf", "-h", str(path)], capture_output=True, text=True, check=True
    ).stdout
    machine = next(line for line in header.splitlines() if "Machine:" in line)
    assert ELF_MACHINE[arch] in machine and ELF_CLASS[arch] in header
    assert "DYN" in header
    if arch == "armv7":
        attrs = subprocess.run(
            ["readelf", "-A", str(path)], capture_output=True, text=True, check=True
        ).stdout
        assert "Tag_ABI_VFP_args: VFP registers" in attrs  # hard float, as on the Pynq
    manifest = json.loads(open(manifest_path(path)).read())
    assert manifest["arch"] == arch
    with pytest.raises(NotRunnableError, match=arch):
        tvm_snn.load(path)
