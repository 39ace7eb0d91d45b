"""The C sources (the qemu harness, the standalone driver) are package data, so a wheel install builds them too."""

import configparser
import fnmatch
import importlib.resources
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tvm_snn.deploy.harness import SOURCES as HARNESS_SOURCES
from tvm_snn.deploy.sources import C_SOURCES, SOURCE_FOLDER, SOURCE_PACKAGE, source_files
from tvm_snn.deploy.standalone import COPIED_SOURCES

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / Path(*SOURCE_PACKAGE.split("."))
# What a wheel is built from: the build configuration and the packages it finds.
BUILD_FILES = ("setup.cfg", "pyproject.toml", "README.md")
BUILD_PACKAGES = ("tvm_snn", "relay_passes", "schedules", "hw_targets")
BUILD_TIMEOUT_S = 300


def test_sources_are_found_as_package_data():
    folder = importlib.resources.files(SOURCE_PACKAGE) / SOURCE_FOLDER
    assert set(HARNESS_SOURCES) | set(COPIED_SOURCES) == set(C_SOURCES)
    for name in C_SOURCES:
        assert (folder / name).is_file(), name
    sources = source_files(C_SOURCES)
    assert sorted(sources) == sorted(C_SOURCES)
    for name, source in sources.items():
        assert source.read_bytes() == (folder / name).read_bytes()
    assert b"__tvm_ffi_" in sources["harness.c"].read_bytes()
    assert b"TVMFFIErrorSetRaisedFromCStrParts" in sources["ffi_stub.c"].read_bytes()


def test_setup_cfg_declares_every_source():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    patterns = config["options.package_data"][SOURCE_PACKAGE].split()
    shipped = {
        path.relative_to(PACKAGE_DIR).as_posix()
        for path in (PACKAGE_DIR / SOURCE_FOLDER).iterdir()
        if any(
            fnmatch.fnmatch(path.relative_to(PACKAGE_DIR).as_posix(), pattern)
            for pattern in patterns
        )
    }
    assert shipped == {f"{SOURCE_FOLDER}/{name}" for name in C_SOURCES}


def test_the_runner_does_not_look_into_the_repo():
    """No module of the package finds files relative to itself: an install has no tools/."""
    for module in PACKAGE_DIR.glob("*.py"):
        text = module.read_text()
        assert "__file__" not in text, module.name
        assert "tools/" not in text, module.name


def _build_wheel(tmp_path):
    """Build a wheel of a copy of the sources (the build writes into its source tree)."""
    source = tmp_path / "src"
    source.mkdir()
    for name in BUILD_FILES:
        shutil.copy2(REPO / name, source / name)
    for name in BUILD_PACKAGES:
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
    ]
    subprocess.run(
        [*command, "--wheel-dir", str(wheels), str(source)], check=True, timeout=BUILD_TIMEOUT_S
    )
    (wheel,) = wheels.glob("tvm_snn-*.whl")
    return wheel


def test_a_wheel_install_builds_from_its_own_sources(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in C_SOURCES:
        assert f"tvm_snn/deploy/{SOURCE_FOLDER}/{name}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # a pure-Python wheel installs by unpacking
    probe = (
        "from tvm_snn.deploy.sources import C_SOURCES, source_files\n"
        "for s in source_files(C_SOURCES).values(): print(s)"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    paths = [Path(line) for line in done.stdout.split()]
    assert [path.name for path in paths] == list(C_SOURCES)
    for path in paths:
        assert path.is_relative_to(site) and path.is_file(), path
