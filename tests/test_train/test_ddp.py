"""DDP under ``torchrun``: two gloo processes on this machine end in the same state."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tvm_snn.train import load_checkpoint
from tvm_snn.train.checkpoint import CHECKPOINT_NAME

WORKER = Path(__file__).with_name("ddp_worker.py")
PROCESSES = 2
TIMEOUT_SECONDS = 240


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    # The pinned CPU wheel ships torch.distributed; without it DDP training cannot work.
    assert torch.distributed.is_available(), "this torch build has no torch.distributed"
    out = tmp_path_factory.mktemp("ddp")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={PROCESSES}", str(WORKER), str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    states = [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in range(PROCESSES)]
    return out, states


def test_both_ranks_end_with_identical_parameters_and_snn_state(ddp_run):
    _, (first, second) = ddp_run
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert any(key.endswith("weight_quantizer.latent") for key in first)
    assert any(key.endswith("weight_quantizer.memory") for key in first)


def test_refinement_ran_under_ddp(ddp_run):
    out, (state, _) = ddp_run
    checkpoint = load_checkpoint(out / "run" / CHECKPOINT_NAME)
    steps = checkpoint["train_config"]["max_steps"]
    assert checkpoint["world"] == PROCESSES and checkpoint["step"] == steps
    assert len(checkpoint["rng"]) == PROCESSES
    initial = torch.load(out / "initial.pt", weights_only=True)
    suffix = ".latent"
    names = [key.removesuffix(suffix) for key in initial if key.endswith(suffix)]
    assert names
    for name in names:
        assert int(state[f"{name}.step"]) == steps, name
        assert not torch.equal(state[f"{name}.latent"], initial[f"{name}.latent"]), name
    changed = [n for n in names if not torch.equal(state[f"{n}.memory"], initial[f"{n}.memory"])]
    assert changed, "no layer's subset changed"
