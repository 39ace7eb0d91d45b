"""The tvm-snn command line, run in-process and once as the installed script."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from tvm_snn import cli

from common import HOST_CPU_TARGET
from onnx_models import plain_cnn


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "model.onnx"
    onnx.save(plain_cnn(), path)
    return path


def test_compile_run_bench(onnx_path, tmp_path, capsys):
    artifact = tmp_path / "model.so"
    assert (
        cli.main(
            [
                "compile",
                str(onnx_path),
                "--target",
                HOST_CPU_TARGET,
                "-o",
                str(artifact),
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal((1, 4, 12, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    assert cli.main(["run", str(artifact), "--input", str(tmp_path / "x.npy"), "-o", str(out)]) == 0
    import tvm_snn

    np.testing.assert_array_equal(np.load(out), tvm_snn.load(artifact)(x))
    capsys.readouterr()
    assert cli.main(["bench", str(artifact), "--repeat", "3"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["repeat"] == 3 and stats["median_ms"] > 0


def test_compile_standalone_then_run_the_program(onnx_path, tmp_path, capsys):
    folder = tmp_path / "standalone"
    assert cli.main(["compile", str(onnx_path), "--standalone", str(folder)]) == 0
    assert f"wrote {folder}" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal((1, 4, 12, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    subprocess.run(
        [str(folder / "snn_model"), "-t", "2", str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        check=True,
    )
    import tvm_snn

    expected = tvm_snn.compile(str(onnx_path))(x)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
    assert cli.main(["compile", str(onnx_path)]) == cli.EXIT_USER_ERROR
    assert "give -o ARTIFACT.so, --standalone DIR" in capsys.readouterr().err


def test_user_errors_exit_2_with_the_error_name(onnx_path, tmp_path, capsys):
    code = cli.main(
        ["compile", str(onnx_path), "--target", "llvm -nope=1", "-o", str(tmp_path / "m.so")]
    )
    assert code == cli.EXIT_USER_ERROR
    assert "TargetError" in capsys.readouterr().err
    assert cli.main(["run", str(tmp_path / "absent.so")]) == cli.EXIT_USER_ERROR
    assert "ArtifactError" in capsys.readouterr().err


def test_tune_then_compile_with_the_database(onnx_path, tmp_path, capsys):
    work_dir = tmp_path / "tuning"
    assert cli.main(["tune", str(onnx_path), "--trials", "4", "--work-dir", str(work_dir)]) == 0
    captured = capsys.readouterr()
    assert "trials/min" in captured.out and "tune [" in captured.err  # the progress bar
    artifact = tmp_path / "tuned.so"
    assert (
        cli.main(["compile", str(onnx_path), "--tuning-db", str(work_dir), "-o", str(artifact)])
        == 0
    )
    assert "kernel (tuning)" in capsys.readouterr().out
    assert (
        cli.main(
            ["tune", str(onnx_path), "--tracker", "127.0.0.1:9190", "--work-dir", str(work_dir)]
        )
        == 2
    )
    assert "InputError" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["compile"], ["tune"], ["run"], ["bench"]])
def test_help(command):
    result = subprocess.run(
        [sys.executable, "-m", "tvm_snn.cli", *command, "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "usage: tvm-snn" in result.stdout
