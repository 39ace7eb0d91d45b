"""Deployment over TVM RPC: a tracker and board servers on 127.0.0.1, started and stopped here.

The x86 artifact runs end to end on the servers (directly, and through the
tracker by key); the typed errors: no server, a wrong key, another
architecture (refused before upload), a plain TVM server, a timeout, a
corrupt artifact, a changed upload; the board server survives a client that
disconnects mid-upload.
"""

import json
import socket
import struct

import numpy as np
import pytest
import torch
from snn_models import SMALL_INPUT_SIZE as SIZE
from snn_models import small_resnet18
from tvm.rpc import base

import tvm_snn
from tvm_snn import cli
from tvm_snn.deploy import remote as deploy_remote
from tvm_snn.deploy.rpc import start_server, start_tracker
from tvm_snn.deploy.server import board_arch, start_board_server
from tvm_snn.errors import ArtifactError, ConfigError, DeployError

from onnx_models import plain_cnn

KEY = "tvm-snn-test-board"
REPEAT = 3
SHORT_TIMEOUT_S = 1.0
LONG_REPEAT = 1_000_000  # runs far past SHORT_TIMEOUT_S
UPLOAD_BYTES = 10 << 20  # the size a cut-off upload announces
SENT_BYTES = 4096


@pytest.fixture(scope="module")
def model():
    example = torch.randn(1, 3, SIZE, SIZE)
    return tvm_snn.compile(small_resnet18(), example_inputs=(example,))


@pytest.fixture(scope="module")
def boards():
    """A tracker, a board server registered under KEY, and one reached directly."""
    tracker = start_tracker()
    registered = start_board_server(tracker=("127.0.0.1", tracker.port), key=KEY)
    direct = start_board_server(port=tracker.port + 50)
    yield {"tracker": f"127.0.0.1:{tracker.port}", "direct": f"127.0.0.1:{direct.port}"}
    for server in (registered, direct):
        server.terminate()
    tracker.terminate()


def test_deploy_runs_the_model_on_a_server_and_matches_the_host(model, boards):
    x = model.random_inputs(seed=3)
    result = tvm_snn.deploy(model, remote=boards["direct"], inputs=x, repeat=REPEAT)
    np.testing.assert_array_equal(result.outputs[0], model(*x))
    assert result.comparison.matched and result.comparison.max_abs_diff == 0.0
    assert result.comparison.reference == "the compiled model on the host"
    assert result.arch == board_arch() == "x86_64"
    assert len(result.times_ms) == REPEAT and result.median_ms > 0


def test_deploy_an_artifact_through_the_tracker(model, boards, tmp_path):
    path = model.export_library(tmp_path / "m.so")
    result = tvm_snn.deploy(str(path), remote={"tracker": boards["tracker"], "key": KEY})
    expected = tvm_snn.load(path)(*result.inputs)
    np.testing.assert_array_equal(result.outputs[0], expected)
    assert result.comparison.reference == "the artifact on the host"


def test_cli_deploy(model, boards, tmp_path, capsys):
    path = model.export_library(tmp_path / "m.so")
    host, port = boards["direct"].split(":")
    assert cli.main(["deploy", str(path), "--remote", f"{host}:{port}", "--repeat", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["matched"] is True and summary["arch"] == "x86_64"
    assert cli.main(["deploy", str(path), "--tracker", boards["tracker"]]) == cli.EXIT_USER_ERROR
    assert "--tracker needs --key" in capsys.readouterr().err


def test_no_server_is_a_deploy_error(model):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DeployError, match=f"no RPC server at 127.0.0.1:{port}"):
        tvm_snn.deploy(model, remote=f"127.0.0.1:{port}")


def test_a_wrong_key_is_a_deploy_error(model, boards):
    with pytest.raises(DeployError, match=f"no board with key 'pynq' \\(it has \\['{KEY}'\\]\\)"):
        tvm_snn.deploy(model, remote={"tracker": boards["tracker"], "key": "pynq"})


def test_another_architecture_is_refused_before_upload(boards, monkeypatch):
    board_model = tvm_snn.compile(plain_cnn(), target="aarch64")

    def no_upload(*_):
        raise AssertionError("uploaded to a board of another architecture")

    monkeypatch.setattr(deploy_remote, "_upload", no_upload)
    with pytest.raises(DeployError, match="built for aarch64, the board at .* is x86_64"):
        tvm_snn.deploy(board_model, remote=boards["direct"])


def test_a_plain_tvm_server_is_a_deploy_error(model, boards):
    tracker_port = int(boards["tracker"].split(":")[1])
    plain = start_server("127.0.0.1", tracker_port, "plain-tvm")
    try:
        with pytest.raises(DeployError, match="not a tvm-snn board server"):
            tvm_snn.deploy(model, remote={"tracker": boards["tracker"], "key": "plain-tvm"})
    finally:
        plain.terminate()


def test_a_timeout_is_a_deploy_error(model, boards):
    with pytest.raises(DeployError, match="timed out"):
        tvm_snn.deploy(
            model, remote=boards["direct"], repeat=LONG_REPEAT, timeout_s=SHORT_TIMEOUT_S
        )


def test_a_corrupt_artifact_is_refused_on_the_host(model, boards, tmp_path):
    path = model.export_library(tmp_path / "m.so")
    with open(path, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\xff\xff")
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        tvm_snn.deploy(str(path), remote=boards["direct"])


class ChangedOnTheWay:
    """A session whose upload arrives with other bytes: the board's sha256 differs."""

    def upload(self, path):
        pass

    def get_function(self, name):
        return lambda _: "0" * 64


def test_an_upload_that_arrives_changed_is_refused(model, tmp_path):
    path = model.export_library(tmp_path / "m.so")
    manifest = tvm_snn.compiled.read_manifest(path)
    with pytest.raises(DeployError, match="arrived changed on the board"):
        deploy_remote._upload(ChangedOnTheWay(), path, manifest)


@pytest.mark.parametrize(
    "remote", ["nohost", {"tracker": "127.0.0.1:9190"}, 9090], ids=["no-port", "no-key", "int"]
)
def test_a_malformed_remote_is_a_config_error(model, remote):
    with pytest.raises(ConfigError):
        tvm_snn.deploy(model, remote=remote)


def drop_mid_upload(address):
    """Shake hands with a server, announce a 10 MB message, send 4 KB and hang up."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port))) as sock:
        key = b"client:"
        sock.sendall(struct.pack("<i", base.RPC_MAGIC) + struct.pack("<i", len(key)) + key)
        assert struct.unpack("<i", base.recvall(sock, 4))[0] == base.RPC_CODE_SUCCESS
        base.recvall(sock, struct.unpack("<i", base.recvall(sock, 4))[0])  # the server's key
        sock.sendall(struct.pack("<q", UPLOAD_BYTES) + b"\0" * SENT_BYTES)


def test_the_board_server_survives_a_client_that_disconnects_mid_upload(model, boards):
    drop_mid_upload(boards["direct"])
    result = tvm_snn.deploy(model, remote=boards["direct"], repeat=1)
    assert result.comparison.matched
