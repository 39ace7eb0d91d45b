"""``tvm_snn.compile(model, target="snn-fpga")``: the accelerator runs the binary convs, the CPU the rest.

The zoo's CIFAR ResNet-18 at 0.56/1 against the CPU build; an ImageNet-style
ResNet written the way QAT code elsewhere writes it (quantizers in
``forward()``, STE residues, BN after each conv) against PyTorch; small
graphs against NumPy; the artifact in a fresh process; the refusals.
"""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from qat_models import make_dyadic_, resnet_imagenet
from relax_builders import conv_epilogue_module, conv_module, subbit_weight
from snn_models import Sign
from tvm import relax

import tvm_snn
from hw_targets.runtime import Source
from hw_targets.spec import load_spec
from schedules import reference
from tvm_snn import cli
from tvm_snn.errors import ArtifactError, StandaloneError, TargetError
from tvm_snn.train.zoo import build_snn_resnet, input_shape

from common import FLOAT_ATOL, FLOAT_RTOL

FPGA = "snn-fpga"
RESIDUAL_SHAPE = (1, 64, 8, 8)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """The zoo's CIFAR ResNet-18 at 0.56/1, built for the CPU and for the accelerator."""
    folder = tmp_path_factory.mktemp("cifar")
    _, path = build_snn_resnet("resnet18", "cifar", True, str(folder))
    x = np.random.default_rng(0).standard_normal(input_shape("cifar")).astype(np.float32)
    return tvm_snn.compile(path, target="x86"), tvm_snn.compile(path, target=FPGA), x, folder


def test_cifar_resnet18_matches_the_cpu_build(cifar):
    cpu, fpga, x, _ = cifar
    np.testing.assert_allclose(fpga(x), cpu(x), rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
    assert len(fpga.accelerator.steps()) == 19
    assert all(function.calls == 1 for function in fpga.accelerator.functions.values())


def test_the_report_says_which_conv_ran_where(cifar):
    _, fpga, _, _ = cifar
    layers = fpga.snn_layers
    assert [layer.snn_kernel for layer in layers] == [""] + [
        "fpga-snn"
    ] * 19  # the float stem stays dense
    assert all(layer.cycles > 0 for layer in layers[1:])
    report = fpga.report()
    assert "cycles (modelled)" in report
    assert (
        "accelerator: snn-fpga 'paper' (64 PEs at 1000 MHz): 19 sub-bit and 0 BNN conv(s)" in report
    )


def test_the_artifact_runs_in_a_fresh_process(cifar, tmp_path):
    cpu, fpga, x, _ = cifar
    path = fpga.export_library(tmp_path / "model.so")
    np.save(tmp_path / "x.npy", x)
    code = (
        "import numpy as np, tvm_snn\n"
        f"cm = tvm_snn.load({str(path)!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, cm(np.load({str(tmp_path / 'x.npy')!r})))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), cpu(x), rtol=FLOAT_RTOL, atol=FLOAT_ATOL
    )
    manifest = json.loads((tmp_path / "model.so.manifest.json").read_text())
    assert manifest["fpga"]["file"] == "model.so.fpga.npz" and manifest["fpga"]["spec"] == "paper"


def test_a_changed_or_missing_functions_file_is_refused(cifar, tmp_path):
    _, fpga, _, _ = cifar
    path = fpga.export_library(tmp_path / "model.so")
    sidecar = tmp_path / "model.so.fpga.npz"
    data = bytearray(sidecar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    sidecar.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match the manifest"):
        tvm_snn.load(path)
    sidecar.unlink()
    with pytest.raises(ArtifactError, match="functions file .* is missing"):
        tvm_snn.load(path)


def _qat_resnet(tmp_path):
    model = make_dyadic_(resnet_imagenet(act="sign", stages=2, classes=10))
    path = str(tmp_path / "qat.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 64, 64),),
            path,
            input_names=["input"],
            dynamo=False,
            do_constant_folding=False,
        )
    return model, path


def test_a_qat_resnet_from_elsewhere_runs_on_the_pynq_preset(tmp_path):
    """Quantizers in forward(), STE residues, BN after the convs, a 7x7 stem: exact against PyTorch (dyadic)."""
    model, path = _qat_resnet(tmp_path)
    x = np.round(np.random.default_rng(1).standard_normal((1, 3, 64, 64)) * 4).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    cm = tvm_snn.compile(path, target=f"{FPGA} -config=pynq-z1")
    np.testing.assert_array_equal(cm(x), want)
    kernels = [layer.snn_kernel for layer in cm.snn_layers]
    assert (
        kernels.count("fpga-snn") == 9 and kernels[0] == ""
    )  # 4 + 4 3x3 convs and the 1x1 shortcut
    assert "snn-fpga 'pynq-z1' (16 PEs at 100 MHz)" in cm.report()


def _binary_conv_expected(weight, x, bias, residual):
    y = reference.conv2d_dense_reference(np.sign(x), weight, None, 1, 1)
    y = y + bias.reshape(1, -1, 1, 1)
    if residual is not None:
        y = y + residual
    return np.maximum(y, 0)


@pytest.mark.parametrize("with_residual", (False, True))
def test_a_graph_with_an_epilogue_matches_numpy(with_residual):
    rng = np.random.default_rng(2)
    weight = subbit_weight(64, 64, tau=4, seed=3)
    bias = rng.standard_normal(64).astype(np.float32)
    residual = rng.standard_normal(RESIDUAL_SHAPE).astype(np.float32) if with_residual else None
    mod = conv_epilogue_module(weight, RESIDUAL_SHAPE, bias, residual, binary=True)
    cm = tvm_snn.compile(mod, target=FPGA)
    x = rng.standard_normal(RESIDUAL_SHAPE).astype(np.float32)
    np.testing.assert_allclose(
        cm(x), _binary_conv_expected(weight, x, bias, residual), rtol=FLOAT_RTOL, atol=FLOAT_ATOL
    )
    (layer,) = cm.snn_layers
    assert layer.snn_kernel == "fpga-snn"


def test_float_activations_stay_on_the_cpu_and_the_report_says_why():
    cm = tvm_snn.compile(conv_module(subbit_weight(64, 64, tau=4), RESIDUAL_SHAPE), target=FPGA)
    (layer,) = cm.snn_layers
    assert layer.lowered and layer.snn_kernel in ("pixel-lane", "lane")
    assert "binary inputs only" in layer.offload
    assert "on the CPU: float activations" in cm.report()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("snn-fpga -config=zcu104", "unknown accelerator config 'zcu104'"),
        ("snn-fpga -speed=3", r"unknown snn-fpga option\(s\) \['speed'\]"),
        ("snn-fpga config", "must be -key=value"),
    ],
)
def test_bad_fpga_targets_are_refused(target, message):
    with pytest.raises(TargetError, match=message):
        tvm_snn.compile(conv_module(subbit_weight(8, 8), (1, 8, 6, 6), binary=True), target=target)


def _bnn_weight(rng, out_channels, in_channels):
    signs = rng.choice(
        np.array([-1.0, 1.0], dtype=np.float32), size=(out_channels, in_channels, 3, 3)
    )
    return signs * rng.uniform(0.5, 1.5, out_channels).astype(np.float32)[:, None, None, None]


def test_a_bnn_conv_the_cpu_leaves_dense_runs_on_the_accelerator():
    """A +-alpha conv on sign(x) that the CPU detector finds unprofitable runs as XNOR."""
    rng = np.random.default_rng(4)
    weight = _bnn_weight(rng, 16, 16)
    mod = conv_module(weight, (1, 16, 8, 8), binary=True)
    assert not tvm_snn.compile(mod, target="x86").snn_layers[0].lowered
    cm = tvm_snn.compile(mod, target=FPGA)
    x = rng.standard_normal((1, 16, 8, 8)).astype(np.float32)
    want = reference.conv2d_dense_reference(np.sign(x), weight, None, 1, 1)
    np.testing.assert_allclose(cm(x), want, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
    (layer,) = cm.snn_layers
    assert (layer.lowered, layer.snn_kernel, layer.reason) == (True, "fpga-bnn", "")
    assert "0 sub-bit and 1 BNN conv(s)" in cm.report()


def test_a_tau_above_the_datapath_runs_as_a_bnn_conv(tmp_path):
    narrow = dict(load_spec("paper").to_dict(), name="narrow", max_tau=4)
    path = tmp_path / "narrow.json"
    path.write_text(json.dumps(narrow))
    weight = subbit_weight(64, 64, tau=5, seed=5)
    cm = tvm_snn.compile(
        conv_module(weight, RESIDUAL_SHAPE, binary=True), target=f"{FPGA} -config={path}"
    )
    x = np.random.default_rng(5).standard_normal(RESIDUAL_SHAPE).astype(np.float32)
    want = reference.conv2d_dense_reference(np.sign(x), weight, None, 1, 1)
    np.testing.assert_allclose(cm(x), want, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
    (layer,) = cm.snn_layers
    assert (layer.tau, layer.snn_kernel) == (5, "fpga-bnn")


def _shortcut_block(w_short, w_main, b_short, b_main, shape):
    """``relu(conv(s, Wm) + bm + (conv1x1(s, Ws) + bs))`` with ``s = sign(x)``: two convs, one region."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            s = builder.emit(relax.op.sign(x))
            a = builder.emit(relax.op.nn.conv2d(s, relax.const(w_short)))
            a = builder.emit(relax.op.add(a, relax.const(b_short.reshape(1, -1, 1, 1))))
            b = builder.emit(relax.op.nn.conv2d(s, relax.const(w_main), padding=1))
            b = builder.emit(relax.op.add(b, relax.const(b_main.reshape(1, -1, 1, 1))))
            out = builder.emit_output(relax.op.nn.relu(relax.op.add(b, a)))
        builder.emit_func_output(out)
    return builder.get()


def test_connected_convs_share_a_region():
    """MergeCompositeFunctions puts a shortcut conv and the conv it feeds in one region: two steps."""
    rng = np.random.default_rng(6)
    w_short = subbit_weight(64, 64, kernel=1, tau=4, seed=7)
    w_main = subbit_weight(64, 64, tau=5, seed=8)
    b_short, b_main = (rng.standard_normal(64).astype(np.float32) for _ in range(2))
    cm = tvm_snn.compile(
        _shortcut_block(w_short, w_main, b_short, b_main, RESIDUAL_SHAPE), target=FPGA
    )
    (region,) = cm.accelerator.functions.values()
    assert [step.kind for step in region.steps] == ["subbit", "subbit"]
    assert region.steps[1].residual == Source("step", 0)
    x = rng.standard_normal(RESIDUAL_SHAPE).astype(np.float32)
    signs = np.sign(x)
    short = reference.conv2d_dense_reference(signs, w_short, b_short, 1, 0)
    want = np.maximum(reference.conv2d_dense_reference(signs, w_main, b_main, 1, 1) + short, 0)
    np.testing.assert_allclose(cm(x), want, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
    assert [layer.snn_kernel for layer in cm.snn_layers] == ["fpga-snn", "fpga-snn"]


def _binary_onnx(path):
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False)
    conv.weight.data = torch.from_numpy(subbit_weight(64, 64, tau=5, seed=9))
    model = torch.nn.Sequential(Sign(), conv, torch.nn.ReLU()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(RESIDUAL_SHAPE),), str(path), input_names=["input"], dynamo=False
        )
    return path


def test_the_cli_compiles_for_the_accelerator_and_refuses_a_standalone_export(tmp_path, capsys):
    path = _binary_onnx(tmp_path / "binary.onnx")
    artifact = tmp_path / "binary.so"
    assert (
        cli.main(
            ["compile", str(path), "--target", "snn-fpga -config=pynq-z1", "-o", str(artifact)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "fpga-snn" in out and "snn-fpga 'pynq-z1'" in out
    assert (tmp_path / "binary.so.fpga.npz").is_file()
    cm = tvm_snn.load(artifact)
    with pytest.raises(StandaloneError, match="runs convs on the snn-fpga accelerator"):
        cm.export_standalone(tmp_path / "standalone")
