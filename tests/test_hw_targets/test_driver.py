"""The devices behind ``run(program, dram)``: DRAM byte formats, the simulator, a board when one is set."""

import os
import sys

import fake_pynq
import numpy as np
import pytest
from fpga_layers import expected_output, subbit_conv, ternary_input

from hw_targets.compiler import compile_conv, dram_image, read_output
from hw_targets.driver import SimulatorDevice, default_device
from hw_targets.driver.formats import pack_region, unpack_region
from hw_targets.driver.remote import RemoteDevice, request_bytes, serve_request
from hw_targets.layer import FpgaConv
from hw_targets.program import Region
from tvm_snn.errors import FpgaError

BOARD_ENV = "TVM_SNN_FPGA_HOST"  # host:port of a board server with the FPGA; unset: the simulator


def test_dram_formats_by_hand():
    ternary = Region("x", "ternary", 5, 2)
    assert pack_region(ternary, [0, 1, -1, 1, -1]) == bytes([0b01_11_01_00, 0b11])
    sign = Region("s", "sign", 9, 1)
    assert pack_region(sign, [-1, 1, 1, -1, 1, 1, 1, 1, -1]) == bytes([0b1001, 0b1])
    index = Region("i", "index", 3, 5)
    assert pack_region(index, [1, 31, 2]) == bytes([0b111_00001, 0b0_10_11])
    assert pack_region(Region("f", "float32", 1, 32), [1.0]) == bytes([0, 0, 0x80, 0x3F])


@pytest.mark.parametrize(("kind", "bits", "values"), [
    ("ternary", 2, [-1, 0, 1, 1, 0, -1, -1]),
    ("sign", 1, [1, -1, -1, 1, 1, 1, 1, -1, 1, 1]),
    ("index", 7, [0, 127, 64, 3]),
    ("float32", 32, [1.5, -0.0, 3e-8]),
])  # fmt: skip
def test_dram_formats_round_trip(kind, bits, values):
    region = Region("r", kind, len(values), bits)
    data = pack_region(region, np.array(values))
    assert len(data) == region.nbytes
    np.testing.assert_array_equal(
        unpack_region(region, data), np.array(values).astype(region.dtype)
    )


def test_bad_dram_images_are_refused():
    with pytest.raises(FpgaError, match="ternary: -1, 0 or \\+1"):
        pack_region(Region("x", "ternary", 2, 2), [2, 0])
    with pytest.raises(FpgaError, match="takes 1 bytes, got 2"):
        unpack_region(Region("x", "ternary", 2, 2), b"\x00\x00")
    with pytest.raises(FpgaError, match="unused ternary code"):
        unpack_region(Region("x", "ternary", 1, 2), b"\x02")


def _device():
    address = os.environ.get(BOARD_ENV)
    return RemoteDevice(address) if address else SimulatorDevice()


def test_a_layer_runs_on_the_device():
    """On the simulator here; on the board's FPGA when TVM_SNN_FPGA_HOST names its server."""
    rng = np.random.default_rng(0)
    layer = FpgaConv(subbit_conv(rng, 3, 5, 32, 24, padding=1), (1, 32, 10, 10), relu=True)
    program = compile_conv(layer, "pynq-z1")
    x = ternary_input(rng, layer.input_shape)
    dram = dram_image(program, layer, x)
    _device().run(program, dram)
    np.testing.assert_array_equal(read_output(dram, layer), expected_output(layer, x))


def test_a_request_round_trips_through_the_board_function():
    """The board server's function, in this process: the same result as the simulator run here."""
    rng = np.random.default_rng(1)
    layer = FpgaConv(subbit_conv(rng, 1, 4, 16, 8, stride=2), (1, 16, 6, 6))
    program = compile_conv(layer, "paper")
    x = ternary_input(rng, layer.input_shape)
    answer = serve_request(request_bytes(program, dram_image(program, layer, x)), SimulatorDevice())
    assert answer[:2] == b"PK"  # an npz
    local = dram_image(program, layer, x)
    SimulatorDevice().run(program, local)
    np.testing.assert_array_equal(read_output(local, layer), expected_output(layer, x))


def test_without_a_bitstream_the_default_device_is_the_simulator():
    assert isinstance(default_device(None), SimulatorDevice)


def test_the_pynq_device_needs_pynq(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynq", None)  # `import pynq` fails, as off a board
    with pytest.raises(FpgaError, match="needs the pynq package"):
        default_device(tmp_path / "snn_fpga.bit")


def test_a_bad_board_address_is_refused():
    with pytest.raises(FpgaError, match="host:port"):
        RemoteDevice("no-port")
    with pytest.raises(FpgaError, match="no snn-fpga board server at 127.0.0.1:1"):
        RemoteDevice("127.0.0.1:1")


def test_the_pynq_device_drives_a_modelled_board(monkeypatch):
    """PynqDevice against a board model (tests/fake_pynq.py): buffers, registers, DRAM bytes, results."""
    monkeypatch.setitem(sys.modules, "pynq", fake_pynq)
    from hw_targets.driver.pynq import PynqDevice

    rng = np.random.default_rng(2)
    layer = FpgaConv(
        subbit_conv(rng, 3, 5, 24, 16, padding=1), (1, 24, 9, 9), residual=True, relu=True
    )
    program = compile_conv(layer, "pynq-z1")
    x = ternary_input(rng, layer.input_shape)
    residual = rng.standard_normal(layer.output_shape).astype(np.float32)
    dram = dram_image(program, layer, x, residual)
    device = PynqDevice("snn_fpga.bit")
    device.run(program, dram)
    np.testing.assert_array_equal(read_output(dram, layer), expected_output(layer, x, residual))
    assert device.ip.started == 1 and not fake_pynq.MEMORY  # every buffer was freed
