"""Run by ``torch.distributed.run`` from ``test_ddp.py``: train briefly, save this rank's state.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node=2 ddp_worker.py OUT``.
Each rank writes ``OUT/rank<r>.pt`` with its final ``state_dict``; rank 0 also
writes the initial one, ``OUT/initial.pt``, and the run's checkpoint ``OUT/run/last.pt``.
"""

import os
import sys
from pathlib import Path

import torch

from tvm_snn.train import (
    ModelSpec,
    SNNConfig,
    SubsetWeightQuantizer,
    TrainConfig,
    fit,
    load_dataset,
)

WIDTH = 4
TAU = 3
REFINE_PERIOD = 2
BATCH_SIZE = 64
STEPS = 11
LR = 1.0
LATENT_SCALE = 0.05
"""Latents start near zero (as late in training), so a few refinements flip signs."""


def spec_for(data):
    """The model both the worker and the test build."""
    config = SNNConfig(tau_3x3=TAU, refine_period=REFINE_PERIOD, seed=3)
    return ModelSpec("resnet20", data.spec.num_classes, data.spec.in_channels, config, width=WIDTH, seed=3)


def main(out):
    data = load_dataset("digits")
    spec = spec_for(data)
    recipe = TrainConfig(batch_size=BATCH_SIZE, lr=LR, max_steps=STEPS, threads=1, progress=False)
    model = spec.build()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, SubsetWeightQuantizer) and module.refine:
                module.latent.mul_(LATENT_SCALE)
    if os.environ["RANK"] == "0":
        torch.save(model.state_dict(), out / "initial.pt")
    result = fit(model, data, recipe, out / "run", spec=spec)
    torch.save(result.model.state_dict(), out / f"rank{os.environ['RANK']}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
