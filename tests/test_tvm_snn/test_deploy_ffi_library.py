"""The FFI library of the qemu harness: the stub, or libtvm_ffi.so extracted from PyPI's wheel.

The download itself (``pip download``) runs in the set-up and in
``test_deploy_qemu.py::test_real_libtvm_ffi_on_aarch64``; here a fake wheel
stands in for it.
"""

import zipfile

import pytest

from tvm_snn.deploy import ffi_library
from tvm_snn.deploy.ffi_library import (
    FFI_STUB,
    FFI_WHEEL,
    LIBRARY_NAME,
    WHEEL_MEMBER,
    extract_library,
    fetch_tvm_ffi,
    installed_ffi_version,
    library_dir,
    main,
)
from tvm_snn.errors import InputError, ToolchainError

LIBRARY_BYTES = b"\x7fELF not really a library"
VERSION = "0.0.1"


def fake_wheel(folder, members):
    path = folder / f"apache_tvm_ffi-{VERSION}-py3-none-manylinux_2_28_aarch64.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture
def downloads(tmp_path, monkeypatch):
    """Replace the pip download by a fake wheel; return the (arch, version) of each download."""
    calls = []

    def download(spec, version, folder):
        calls.append((spec.name, version))
        return fake_wheel(tmp_path, {WHEEL_MEMBER: LIBRARY_BYTES})

    monkeypatch.setattr(ffi_library, "download_wheel", download)
    return calls


def test_extract_library_writes_the_wheel_member(tmp_path):
    wheel = fake_wheel(tmp_path, {WHEEL_MEMBER: LIBRARY_BYTES, "tvm_ffi/__init__.py": b""})
    target = tmp_path / "lib" / LIBRARY_NAME
    target.parent.mkdir()
    assert extract_library(wheel, target) == target
    assert target.read_bytes() == LIBRARY_BYTES
    assert [path.name for path in target.parent.iterdir()] == [LIBRARY_NAME]


def test_extract_library_from_a_wheel_without_the_library_is_typed(tmp_path):
    wheel = fake_wheel(tmp_path, {"tvm_ffi/__init__.py": b""})
    with pytest.raises(ToolchainError, match=f"holds no {WHEEL_MEMBER}"):
        extract_library(wheel, tmp_path / LIBRARY_NAME)
    not_a_zip = tmp_path / "broken.whl"
    not_a_zip.write_bytes(b"PK?")
    with pytest.raises(ToolchainError, match="holds no"):
        extract_library(not_a_zip, tmp_path / LIBRARY_NAME)


def test_fetch_downloads_once_into_the_cache(tmp_path, monkeypatch, downloads):
    monkeypatch.setenv("TVM_SNN_QEMU_CACHE", str(tmp_path / "cache"))
    first = fetch_tvm_ffi("aarch64", version=VERSION)
    assert first == library_dir("aarch64", VERSION) / LIBRARY_NAME
    assert first.parent.parent == tmp_path / "cache"
    assert first.read_bytes() == LIBRARY_BYTES
    assert fetch_tvm_ffi("aarch64", version=VERSION) == first
    assert downloads == [("aarch64", VERSION)]
    assert [path.name for path in first.parent.iterdir()] == [LIBRARY_NAME]  # no scratch left


def test_fetch_defaults_to_the_installed_version(tmp_path, monkeypatch, downloads):
    monkeypatch.setenv("TVM_SNN_QEMU_CACHE", str(tmp_path))
    path = fetch_tvm_ffi()
    assert path.parent.name == f"tvm_ffi-{installed_ffi_version()}-aarch64"
    assert downloads == [("aarch64", installed_ffi_version())]


def test_fetch_for_an_arch_without_a_wheel_is_typed(tmp_path, downloads):
    with pytest.raises(ToolchainError, match="PyPI has no armv7 wheel"):
        fetch_tvm_ffi("pynq", dest=tmp_path)
    assert downloads == []


def test_ffi_library_choice(tmp_path):
    stub = tmp_path / "ffi_stub.so"
    assert ffi_library.ffi_library("armv7", FFI_STUB, stub) == stub
    with pytest.raises(InputError, match="ffi must be one of"):
        ffi_library.ffi_library("aarch64", "libtvm", stub)
    with pytest.raises(ToolchainError, match="armv7"):  # no libstdc++, or no wheel
        ffi_library.ffi_library("armv7", FFI_WHEEL, stub)


def test_main_prints_the_path_or_the_error(tmp_path, monkeypatch, capsys, downloads):
    assert main(["--dest", str(tmp_path / "lib"), "--ffi-version", VERSION]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "lib" / LIBRARY_NAME)

    def fail(spec, version, folder):
        raise ToolchainError("no network")

    monkeypatch.setattr(ffi_library, "download_wheel", fail)
    assert main(["--dest", str(tmp_path / "other")]) == 1
    assert "no network" in capsys.readouterr().err
