"""The ``tvm-snn train`` and ``tvm-snn export`` subcommands (registered by ``tvm_snn.cli``).

::

    tvm-snn train --model resnet20 --dataset digits --tau 5 --epochs 10 --out runs/digits
    torchrun --nproc_per_node=2 -m tvm_snn.cli train ... # DDP: gloo on CPU, NCCL on GPUs
    tvm-snn train ... --resume                           # continue a killed run
    tvm-snn export runs/digits/last.pt -o model.onnx     # + model.pt2

Neither imports tvm. Errors from ``tvm_snn.errors`` reach ``tvm_snn.cli.main``,
which prints them as one line.
"""

import os

from tvm_snn.errors import ConfigError
from tvm_snn.train.checkpoint import load_model
from tvm_snn.train.config import SNNConfig
from tvm_snn.train.data import DATASETS, DEFAULT_IMAGE_SIZE, DataBundle, DataSpec, load_dataset
from tvm_snn.train.distributed import RANK_VAR, ROOT_RANK
from tvm_snn.train.exporter import export
from tvm_snn.train.layers import DEFAULT_TAU_1X1, DEFAULT_TAU_3X3
from tvm_snn.train.models import MODEL_REGISTRY, STEMS, ModelSpec
from tvm_snn.train.summary import summary
from tvm_snn.train.trainer import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_MOMENTUM,
    DEFAULT_WEIGHT_DECAY,
    TrainConfig,
    fit,
)

DEFAULT_MODEL = "resnet20"
DEFAULT_DATASET = "digits"
DEFAULT_OUT = "runs/train"
NONE_WORD = "none"


def _tau_1x1(text):
    if text.lower() == NONE_WORD:
        return None
    return int(text)


def add_train_parser(subparsers):
    """Add ``train`` to the ``tvm-snn`` subparsers."""
    train = subparsers.add_parser(
        "train",
        help="train a sub-bit (or float) model; runs under torchrun with DDP",
        description="Train with SGD (momentum 0.9, weight decay 1e-4, lr 0.1, cosine schedule); "
        "writes OUT/last.pt (atomically) and OUT/metrics.json.",
    )
    train.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODEL_REGISTRY))
    train.add_argument("--dataset", default=DEFAULT_DATASET, choices=sorted(DATASETS))
    train.add_argument(
        "--data-dir", help="local folder of cifar10 / imagefolder (never downloaded)"
    )
    train.add_argument(
        "--image-size", type=int, default=DEFAULT_IMAGE_SIZE, help="imagefolder image side"
    )
    train.add_argument(
        "--tau", type=int, default=DEFAULT_TAU_3X3, help="bits per 3x3 kernel (9: BNN)"
    )
    train.add_argument(
        "--tau-1x1",
        type=_tau_1x1,
        default=DEFAULT_TAU_1X1,
        help="bits per 8-channel 1x1 unit (8: BNN), or 'none' to keep 1x1 convs in float",
    )
    train.add_argument(
        "--binary-act", action="store_true", help="binarize the sub-bit convs' inputs"
    )
    train.add_argument(
        "--no-refine", action="store_true", help="keep the sampled subsets (Vanilla-SNN)"
    )
    train.add_argument(
        "--float", action="store_true", help="train the float model (no sub-bit layers)"
    )
    train.add_argument("--width", type=int, help="first-stage width (default: the model's)")
    train.add_argument(
        "--stem", choices=STEMS, help="ResNet stem (default: cifar, imagenet for imagefolder)"
    )
    train.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    train.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="per process")
    train.add_argument("--lr", type=float, default=DEFAULT_LR)
    train.add_argument("--momentum", type=float, default=DEFAULT_MOMENTUM)
    train.add_argument("--weight-decay", type=float, default=DEFAULT_WEIGHT_DECAY)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--checkpoint-every", type=int, default=DEFAULT_CHECKPOINT_EVERY, help="steps"
    )
    train.add_argument("--workers", type=int, default=0, help="data-loading processes")
    train.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    train.add_argument("--out", default=DEFAULT_OUT, help="run folder")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)
    return train


def add_export_parser(subparsers):
    """Add ``export`` to the ``tvm-snn`` subparsers."""
    export = subparsers.add_parser(
        "export",
        help="export a training checkpoint to ONNX (+ torch.export .pt2) with SNN metadata",
    )
    export.add_argument("checkpoint", help="a checkpoint written by tvm-snn train (OUT/last.pt)")
    export.add_argument(
        "-o", "--output", required=True, help="the .onnx file; the .pt2 goes beside it"
    )
    export.add_argument(
        "--no-pt2", action="store_true", help="do not write the torch.export program"
    )
    export.add_argument("--dynamic-batch", action="store_true", help="symbolic batch dimension")
    export.set_defaults(func=run_export)
    return export


def add_commands(subparsers):
    """Add ``train`` and ``export`` to the ``tvm-snn`` subparsers."""
    add_train_parser(subparsers)
    add_export_parser(subparsers)


def _is_root():
    return os.environ.get(RANK_VAR, str(ROOT_RANK)) == str(ROOT_RANK)


def spec_from_args(args, data_spec):
    """Return the :class:`ModelSpec` that ``tvm-snn train`` arguments describe."""
    config = None
    if args.float and (args.binary_act or args.no_refine):
        raise ConfigError(
            "--float trains the float model: --binary-act and --no-refine do not apply"
        )
    if not args.float:
        config = SNNConfig(
            tau_3x3=args.tau,
            tau_1x1=args.tau_1x1,
            binary_act=args.binary_act,
            refine=not args.no_refine,
            seed=args.seed,
        )
    stem = args.stem
    if stem is None and args.model.startswith("resnet"):
        stem = "imagenet" if args.dataset == "imagefolder" else "cifar"
    return ModelSpec(
        args.model,
        data_spec.num_classes,
        data_spec.in_channels,
        config,
        width=args.width,
        stem=stem,
        seed=args.seed,
    )


def run_train(args):
    """Run ``tvm-snn train``."""
    options = {"image_size": args.image_size} if args.dataset == "imagefolder" else {}
    data = load_dataset(args.dataset, args.data_dir, **options)
    spec = spec_from_args(args, data.spec)
    recipe = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        workers=args.workers,
        threads=args.threads,
        progress=not args.no_progress,
    )
    result = fit(spec.build(), data, recipe, args.out, resume=args.resume, spec=spec)
    if _is_root():
        print(f"test accuracy {result.test_accuracy:.4f} after {result.steps} steps")
        print(f"wrote {result.checkpoint}")


def run_export(args):
    """Run ``tvm-snn export``."""
    model, state = load_model(args.checkpoint)
    data_spec = DataSpec.from_dict(state["data_spec"])
    example = DataBundle(data_spec, None, None).example_input()
    result = export(
        model, example, args.output, write_pt2=not args.no_pt2, dynamic_batch=args.dynamic_batch
    )
    print(summary(model, tuple(example.shape)))
    print(f"wrote {result.onnx_path} ({len(result.layers)} sub-bit convs in its metadata)")
    if result.pt2_path is not None:
        print(f"wrote {result.pt2_path}")
