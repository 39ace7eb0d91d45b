"""``tvm_snn.compile``: import, run the SNN pipeline, build."""

import os

import tvm

from hw_targets.byoc import FpgaClaims
from relay_passes.frontend_metadata import cross_check, read_entries
from relay_passes.layer_records import read_reports
from relay_passes.pipeline import finish_pipeline, run_graph_passes, run_schedule_passes
from relay_passes.policy import LoweringPolicy
from relay_passes.unaligned_inputs import unaligned_inputs
from tvm_snn.accelerator import fpga_target, offload_passes, run_codegen
from tvm_snn.compiled import CompiledModel
from tvm_snn.errors import CompileError, ConfigError, FpgaError, TuningError
from tvm_snn.importers import input_specs, load_onnx, onnx_metadata, to_relax
from tvm_snn.target import parse_target, target_spec
from tvm_snn.tuning.plans import check_database, database_plans


def compile(model, target="x86", example_inputs=None, tuning_db=None, snn_policy=None):  # noqa: A001
    """Compile a model for a CPU target.

    Parameters
    ----------
    model : torch.nn.Module, torch.export.ExportedProgram, onnx.ModelProto, str or tvm.IRModule
        The model; a string or path names an ``.onnx`` file.
    target : str, dict or tvm.target.Target
        A preset (``"x86"``, ``"aarch64"``, ``"pynq"``), a TVM CLI target
        string, a JSON dict or a ``Target``; or ``"snn-fpga"`` (options
        ``-config=paper|pynq-z1|PATH.json``, ``-host=TARGET``): the FPGA
        accelerator runs the binary-input convs it can, the host CPU the
        rest (see :mod:`tvm_snn.accelerator`).
    example_inputs : tensor, array or tuple of them, optional
        Required for a ``torch.nn.Module``.
    tuning_db : str, optional
        A work dir of :func:`tvm_snn.tune` for this model and target: each
        kernel is built with the fastest plan measured there (the hand plan
        where none was faster). ``cm.report()`` says which were tuned.
    snn_policy : relay_passes.subbit_analysis.LoweringPolicy, optional
        Tau caps and the profitability threshold of the SNN detector.

    Returns
    -------
    CompiledModel

    Raises
    ------
    TargetError, ModelImportError, UnsupportedOpError, CompileError, ConfigError, FormatError
    TuningError
        A ``tuning_db`` that is corrupt, or was made for another model or target.
    """
    if snn_policy is not None and not isinstance(snn_policy, LoweringPolicy):
        raise ConfigError(f"snn_policy must be a LoweringPolicy, got {type(snn_policy).__name__}")
    fpga = fpga_target(target)
    claims = FpgaClaims(fpga.spec) if fpga is not None else None
    spec = target_spec(fpga.host if fpga is not None else target)
    tvm_target = parse_target(spec)
    offload = offload_passes(claims) if claims is not None else ()
    plans = None if tuning_db is None else database_plans(tuning_db)
    if isinstance(model, (str, os.PathLike)):
        model = load_onnx(model)  # read once: for the graph and its metadata
    mod = to_relax(model, example_inputs)
    inputs = input_specs(mod)
    entries = read_entries(onnx_metadata(model))  # bad metadata fails before the build
    try:
        mod = run_graph_passes(mod, tvm_target, snn_policy, offload=offload, plans=plans)
        layers = read_reports(mod)
        if claims is not None:
            mod = run_codegen(mod, claims)
        mod = run_schedule_passes(mod, tvm_target, plans=plans)
        if plans is not None:
            check_database(tuning_db, tvm_target, plans)
        unaligned = unaligned_inputs(mod)
        executable = tvm.compile(mod, target=tvm_target, relax_pipeline=finish_pipeline(tvm_target))
    except (TuningError, FpgaError):
        raise
    except Exception as err:  # TVM raises InternalError/TVMError/ValueError here
        raise CompileError(f"TVM failed to build the model for {spec}: {err}") from err
    problems = cross_check(layers, entries) if entries else []
    tuning = [] if plans is None else list(plans.choices.values())
    return CompiledModel(
        executable,
        spec,
        inputs,
        layers,
        problems,
        unaligned,
        tuning,
        scheduled=mod,
        accelerator=claims,
    )
