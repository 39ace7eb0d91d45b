"""The ``tvm-snn`` command line: compile, tune, run, bench and deploy; train and export (``tvm_snn.train.cli``).

Each subcommand mirrors the Python API and has ``--help``. Errors from
``tvm_snn.errors`` print as one line and exit with status 2.
"""

import argparse
import json
import sys

import numpy as np

from tvm_snn.deploy.rpc import parse_address
from tvm_snn.errors import InputError, SNNError

EXIT_USER_ERROR = 2


def _load_model_file(path, input_shapes):
    """Return the model object for a file given on the command line."""
    if path.endswith(".pt2"):
        import torch

        return torch.export.load(path), None
    if input_shapes:
        return path, tuple(np.zeros(shape, dtype=np.float32) for shape in input_shapes)
    return path, None


def _parse_shape(text):
    try:
        return tuple(int(dim) for dim in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a shape is comma-separated integers, got {text!r}"
        ) from None


def _cmd_compile(args):
    import tvm_snn

    if args.output is None and args.standalone is None:
        raise InputError("give -o ARTIFACT.so, --standalone DIR, or both")
    model, examples = _load_model_file(args.model, args.input_shape)
    cm = tvm_snn.compile(
        model, target=args.target, example_inputs=examples, tuning_db=args.tuning_db
    )
    print(cm.report())
    if args.output is not None:
        cm.export_library(args.output)
        print(f"wrote {args.output}")
    if args.standalone is not None:
        artifact = cm.export_standalone(args.standalone)
        print(
            f"wrote {artifact.folder}: {artifact.program} ({artifact.program_bytes} bytes, "
            f"{artifact.steps} kernel calls, activations {artifact.arena_bytes} bytes planned "
            f"of {artifact.unplanned_bytes}, weights {artifact.weight_bytes} bytes)"
        )


def _cmd_tune(args):
    import tvm_snn
    from tvm_snn.train.progress import ProgressBar

    model, examples = _load_model_file(args.model, args.input_shape)
    runner = "local"
    if args.tracker:
        if not args.key:
            raise InputError(
                "--tracker needs --key (the device key the RPC servers registered with)"
            )
        runner = {"tracker": f"{args.tracker[0]}:{args.tracker[1]}", "key": args.key}
    bar = ProgressBar(args.trials, "tune")

    def progress(done, total, best_ms, left_s):
        del total
        left = f"{left_s:.0f}s" if left_s is not None else "?"
        bar.update(done - bar.done, best_ms=float(best_ms), left=left)

    result = tvm_snn.tune(
        model,
        target=args.target,
        work_dir=args.work_dir,
        trials=args.trials,
        runner=runner,
        seed=args.seed,
        example_inputs=examples,
        progress=progress,
    )
    bar.close()
    for task in result.tasks:
        hand = f"{task.hand_ms:.4f}" if task.hand_ms is not None else "-"
        best = f"{task.best_ms:.4f}" if task.best_ms is not None else "-"
        print(
            f"{task.label:<44} x{task.calls} trials {task.trials:>3} hand {hand} ms best {best} ms"
        )
    print(f"{result.trials_per_minute:.1f} trials/min; compile with --tuning-db {args.work_dir}")


def _read_inputs(cm, paths):
    if not paths:
        return cm.random_inputs(seed=0)
    try:
        return [np.load(path) for path in paths]
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read input file: {err}") from None


def _cmd_run(args):
    import tvm_snn

    cm = tvm_snn.load(args.artifact)
    out = cm(*_read_inputs(cm, args.input))
    outputs = out if isinstance(out, tuple) else (out,)
    for i, array in enumerate(outputs):
        print(
            f"output {i}: {array.dtype}{list(array.shape)} mean={array.mean():.6g} max={array.max():.6g}"
        )
    if args.output:
        np.save(args.output, outputs[0])
        print(f"wrote {args.output}")


def _cmd_deploy(args):
    import tvm_snn

    if (args.remote is None) == (args.tracker is None):
        raise InputError("give either --remote HOST:PORT or --tracker HOST:PORT with --key")
    if args.tracker is not None and not args.key:
        raise InputError("--tracker needs --key, the boards' device key")
    remote = (
        f"{args.remote[0]}:{args.remote[1]}"
        if args.remote is not None
        else {"tracker": f"{args.tracker[0]}:{args.tracker[1]}", "key": args.key}
    )
    inputs = None
    if args.input:
        try:
            inputs = [np.load(path) for path in args.input]
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read input file: {err}") from None
    result = tvm_snn.deploy(
        args.artifact, remote, inputs=inputs, repeat=args.repeat, timeout_s=args.timeout
    )
    comparison = result.comparison
    summary = {
        "remote": result.remote,
        "arch": result.arch,
        "median_ms": result.median_ms,
        "matched": None if comparison is None else comparison.matched,
        "max_abs_diff": None if comparison is None else comparison.max_abs_diff,
        "reference": result.note if comparison is None else comparison.reference,
    }
    print(json.dumps(summary))
    if args.output:
        np.save(args.output, result.outputs[0])


def _cmd_bench(args):
    import tvm_snn

    cm = tvm_snn.load(args.artifact)
    stats = cm.benchmark(_read_inputs(cm, args.input), repeat=args.repeat)
    print(json.dumps(stats, indent=2))


def build_parser():
    """Return the argument parser of ``tvm-snn``."""
    parser = argparse.ArgumentParser(
        prog="tvm-snn", description="Compile Sub-bit Neural Networks with TVM."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    comp = sub.add_parser(
        "compile", help="compile an .onnx or .pt2 (torch.export) model to an artifact"
    )
    comp.add_argument("model", help="path to an .onnx file or a .pt2 ExportedProgram")
    comp.add_argument(
        "--target",
        default="x86",
        help='preset (x86, aarch64, pynq), "llvm -mcpu=..." string, or "snn-fpga [-config=pynq-z1]"',
    )
    comp.add_argument("-o", "--output", help="artifact path (.so); a manifest is written beside it")
    comp.add_argument(
        "--standalone",
        metavar="DIR",
        help="also (or only) write the model as a C program on libc to DIR, and build it",
    )
    comp.add_argument(
        "--input-shape",
        action="append",
        type=_parse_shape,
        metavar="N,C,H,W",
        help="static shape of each input, for ONNX models with symbolic shapes (repeat per input)",
    )
    comp.add_argument("--tuning-db", help="a `tvm-snn tune` work dir for this model and target")
    comp.set_defaults(func=_cmd_compile)

    tune = sub.add_parser(
        "tune", help="tune the kernels' plans with MetaSchedule (resumes an existing work dir)"
    )
    tune.add_argument("model", help="path to an .onnx file or a .pt2 ExportedProgram")
    tune.add_argument(
        "--target", default="x86", help='preset (x86, aarch64, pynq) or "llvm -mcpu=..." string'
    )
    tune.add_argument(
        "--trials",
        type=int,
        default=64,
        help="trials in all (max_trials_global), earlier runs included",
    )
    tune.add_argument(
        "--work-dir", default="tuning", help="MetaSchedule work dir (its JSON database)"
    )
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument(
        "--tracker",
        type=parse_address,
        metavar="HOST:PORT",
        help="time on boards behind this RPC tracker",
    )
    tune.add_argument("--key", help="the boards' device key at the tracker")
    tune.add_argument(
        "--input-shape",
        action="append",
        type=_parse_shape,
        metavar="N,C,H,W",
        help="static shape of each input, for ONNX models with symbolic shapes (repeat per input)",
    )
    tune.set_defaults(func=_cmd_tune)

    run = sub.add_parser("run", help="run an artifact on .npy inputs (random inputs if none)")
    run.add_argument("artifact")
    run.add_argument("--input", action="append", help=".npy file per input, in order")
    run.add_argument("-o", "--output", help="write the first output to this .npy file")
    run.set_defaults(func=_cmd_run)

    bench = sub.add_parser("bench", help="time an artifact on this machine")
    bench.add_argument("artifact")
    bench.add_argument("--input", action="append", help=".npy file per input, in order")
    bench.add_argument("--repeat", type=int, default=50)
    bench.set_defaults(func=_cmd_bench)

    deploy = sub.add_parser(
        "deploy",
        help="upload an artifact to a board's RPC server, run it, compare it with the host, time it",
    )
    deploy.add_argument("artifact", help="an .so written by `tvm-snn compile` (manifest beside it)")
    deploy.add_argument(
        "--remote", type=parse_address, metavar="HOST:PORT", help="the board's server"
    )
    deploy.add_argument(
        "--tracker", type=parse_address, metavar="HOST:PORT", help="ask this tracker for a board"
    )
    deploy.add_argument("--key", help="the board's device key at the tracker")
    deploy.add_argument("--input", action="append", help=".npy file per input (random if none)")
    deploy.add_argument("--repeat", type=int, default=10, help="timed runs on the board")
    deploy.add_argument("--timeout", type=float, default=120.0, help="seconds for the session")
    deploy.add_argument("-o", "--output", help="write the board's first output to this .npy file")
    deploy.set_defaults(func=_cmd_deploy)

    from tvm_snn.train.cli import add_commands as add_train_commands

    add_train_commands(sub)
    return parser


def main(argv=None):
    """Entry point of the ``tvm-snn`` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SNNError as err:
        print(f"tvm-snn: error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
