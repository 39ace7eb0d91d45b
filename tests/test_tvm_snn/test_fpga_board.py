"""An snn-fpga model whose accelerator calls go to a board server over TVM RPC (on 127.0.0.1 here)."""

import numpy as np
import pytest
from relax_builders import conv_epilogue_module, subbit_weight

import tvm_snn
from hw_targets.driver.remote import RemoteDevice
from schedules import reference
from tvm_snn.deploy.server import start_board_server
from tvm_snn.errors import DeployError

from common import FLOAT_ATOL, FLOAT_RTOL

SHAPE = (1, 64, 8, 8)


@pytest.fixture(scope="module")
def server():
    board = start_board_server()
    yield board
    board.terminate()


def test_the_accelerator_calls_run_on_the_board_server(server):
    rng = np.random.default_rng(0)
    weight = subbit_weight(64, 64, tau=5, seed=1)
    bias = rng.standard_normal(64).astype(np.float32)
    cm = tvm_snn.compile(
        conv_epilogue_module(weight, SHAPE, bias, binary=True), target="snn-fpga -config=pynq-z1"
    )
    board = RemoteDevice(f"127.0.0.1:{server.port}")
    cm.accelerator.use_device(board)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    want = np.maximum(
        reference.conv2d_dense_reference(np.sign(x), weight, None, 1, 1)
        + bias.reshape(1, -1, 1, 1),
        0,
    )
    np.testing.assert_allclose(cm(x), want, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
    assert board.runs == 1 and board.board_device == "simulator"  # no bitstream on this "board"


def test_deploying_an_accelerated_model_is_refused_with_the_way_to_run_it(server, tmp_path):
    cm = tvm_snn.compile(
        conv_epilogue_module(
            subbit_weight(64, 64, tau=5), SHAPE, np.zeros(64, np.float32), binary=True
        ),
        target="snn-fpga",
    )
    with pytest.raises(DeployError, match="use_device"):
        tvm_snn.deploy(cm, remote=f"127.0.0.1:{server.port}")
