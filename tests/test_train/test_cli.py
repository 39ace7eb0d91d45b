"""Tests of ``tvm-snn train`` and ``tvm-snn export``, run in-process through ``tvm_snn.cli.main``."""

import subprocess
import sys

import onnxruntime as ort
import pytest
import torch

from tvm_snn.cli import EXIT_USER_ERROR, main
from tvm_snn.train import load_checkpoint
from tvm_snn.train.exporter import read_layers

TINY = ["--model", "resnet20", "--width", "4", "--epochs", "1", "--batch-size", "128", "--threads", "1"]
NO_TVM_PROBE = (
    "import sys; from tvm_snn.cli import main; "
    "code = main(['export', 'missing.pt', '-o', 'x.onnx']); "
    "leaked = [m for m in sys.modules if m == 'tvm' or m.startswith('tvm.')]; "
    "sys.exit(10 if leaked else code)"
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    code = main(["train", *TINY, "--tau", "5", "--binary-act", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_train_writes_a_checkpoint_with_the_requested_model(trained, capsys):
    state = load_checkpoint(trained / "last.pt")
    spec = state["model_spec"]
    assert spec["name"] == "resnet20" and spec["width"] == 4 and spec["stem"] == "cifar"
    assert spec["config"]["tau_3x3"] == 5 and spec["config"]["binary_act"] is True
    assert spec["config"]["refine"] is True
    assert state["step"] == 11 and len(state["history"]) == 1
    assert (trained / "metrics.json").is_file()


def test_export_writes_onnx_that_onnx_runtime_runs(trained, tmp_path, capsys):
    onnx_path = tmp_path / "model.onnx"
    assert main(["export", str(trained / "last.pt"), "-o", str(onnx_path)]) == 0
    out = capsys.readouterr().out
    assert "sub-bit convs in its metadata" in out and "Mbit" in out
    layers = read_layers(onnx_path)
    assert layers and {entry["tau"] for entry in layers} == {5, 4}  # 3x3 and the default 1x1
    assert {entry["activation"] for entry in layers} == {"binary"}
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": torch.zeros(1, 1, 8, 8).numpy()})
    assert logits.shape == (1, 10)
    assert onnx_path.with_suffix(".pt2").is_file()


def test_resume_of_a_finished_run_trains_no_further(trained, capsys):
    before = load_checkpoint(trained / "last.pt")
    args = ["train", *TINY, "--tau", "5", "--binary-act", "--out", str(trained), "--resume", "--no-progress"]
    assert main(args) == 0
    assert "after 11 steps" in capsys.readouterr().out
    after = load_checkpoint(trained / "last.pt")
    assert after["step"] == before["step"]


def test_no_refine_and_float_flags(tmp_path):
    code = main(["train", *TINY, "--no-refine", "--tau-1x1", "none", "--out", str(tmp_path / "v"), "--no-progress"])
    assert code == 0
    config = load_checkpoint(tmp_path / "v" / "last.pt")["model_spec"]["config"]
    assert config["refine"] is False and config["tau_1x1"] is None
    assert main(["train", *TINY, "--float", "--out", str(tmp_path / "f"), "--no-progress"]) == 0
    assert load_checkpoint(tmp_path / "f" / "last.pt")["model_spec"]["config"] is None


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["train", "--dataset", "cifar10", "--data-dir", "/nonexistent/cifar"], "DataError"),
        (["train", "--float", "--binary-act"], "ConfigError"),
        (["train", "--tau", "10"], "ConfigError"),
        (["export", "/nonexistent/last.pt", "-o", "x.onnx"], "ArtifactError"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(argv, error, capsys, tmp_path):
    assert main([*argv, *(["--out", str(tmp_path)] if argv[0] == "train" else [])]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tvm-snn: error: {error}")


def test_train_and_export_commands_do_not_import_tvm():
    result = subprocess.run([sys.executable, "-c", NO_TVM_PROBE], capture_output=True, text=True)
    assert result.returncode == EXIT_USER_ERROR, result.stdout + result.stderr
