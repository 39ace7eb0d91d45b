"""Tuning over TVM RPC: a tracker and two servers on 127.0.0.1, started and stopped here."""

import json
import os

import pytest
import torch
from snn_models import SMALL_INPUT_SIZE as SIZE
from snn_models import small_resnet18 as small_snn

import tvm_snn
from tvm_snn.deploy.rpc import start_server, start_tracker
from tvm_snn.errors import ConfigError
from tvm_snn.tuning.records import FAILED_SECS, RECORDS

KEY = "tvm-snn-test-x86"
RPC_TRIALS = 4


@pytest.fixture(scope="module")
def tracker():
    tracker = start_tracker()
    servers = [start_server("127.0.0.1", tracker.port, KEY) for _ in range(2)]
    yield tracker
    for server in servers:
        server.terminate()
    tracker.terminate()


def test_tune_times_candidates_on_the_rpc_servers(tracker, tmp_path):
    work_dir = str(tmp_path / "rpc")
    runner = {"tracker": f"127.0.0.1:{tracker.port}", "key": KEY}
    result = tvm_snn.tune(
        small_snn(),
        work_dir=work_dir,
        trials=RPC_TRIALS,
        runner=runner,
        example_inputs=(torch.randn(1, 3, SIZE, SIZE),),
    )
    with open(os.path.join(work_dir, RECORDS)) as handle:
        records = [json.loads(line) for line in handle]
    assert len(records) == RPC_TRIALS
    assert all(
        min(record[1][1]) < FAILED_SECS for record in records
    )  # every candidate ran remotely
    assert (
        sum(task.hand_ms is not None for task in result.tasks) == RPC_TRIALS
    )  # the first hand plans


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10"])
def test_servers_refuse_to_bind_beyond_loopback_without_the_flag(host):
    with pytest.raises(ConfigError, match="no authentication"):
        start_tracker(host=host)
    with pytest.raises(ConfigError, match="no authentication"):
        start_server("127.0.0.1", 9190, KEY, host=host)


def test_a_bad_tracker_address_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="host:port"):
        tvm_snn.tune(
            small_snn(),
            work_dir=str(tmp_path / "w"),
            trials=1,
            runner={"tracker": "nowhere", "key": KEY},
            example_inputs=(torch.randn(1, 3, SIZE, SIZE),),
        )
