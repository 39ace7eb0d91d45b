"""A tuning work dir: MetaSchedule's JSON database of plan records, and the manifest that says whose it is.

Layout of ``work_dir`` (MetaSchedule's names, so its tools read it):

- ``database_workload.json`` and ``database_tuning_record.json``: a
  ``JSONDatabase``. A task's workload is its kernel built with the hand plan
  (:class:`relay_passes.plan_choice.KernelTask`); a record's trace annotates
  the plan it measured on the kernel's output block, so applying it to the
  workload tells the plan, and ``run_secs`` are its times. Failed candidates
  are recorded with no times.
- ``tvm_snn_tuning.json``: the target and the model's fingerprint (the
  workloads' structural hashes), so a database is never applied to another
  model or target.

Records are appended one line each as they are measured, so a run killed
mid-way loses at most the batch in flight.
"""

import hashlib
import json
import os

import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.utils import shash2hex
from tvm_ffi import structural_equal

from schedules.plan import PLAN_ANNOTATION
from tvm_snn.errors import TuningError

MANIFEST = "tvm_snn_tuning.json"
WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
TUNING_FORMAT = "tvm-snn-tuning"
TUNING_VERSION = 1
FAILED_SECS = 1e10  # MetaSchedule's cost of a candidate with no times


def run_time(run_secs):
    """A candidate's time from its repeated timings: their median (``FAILED_SECS`` when it has none).

    The median, not the minimum: among many candidates of equal speed, the
    minimum would crown the luckiest timing.
    """
    secs = sorted(float(s) for s in run_secs)
    return secs[len(secs) // 2] if secs else FAILED_SECS


def workload_hash(workload):
    """The structural hash of a task's workload, as hex (stable across processes)."""
    return shash2hex(workload)


def model_fingerprint(hashes):
    """One hash of a model's set of workloads."""
    return hashlib.sha256("\n".join(sorted(set(hashes))).encode()).hexdigest()


def _check_lines(path, drop_cut_tail=False):
    """Raise ``TuningError`` naming the file and record when a line is not JSON.

    With ``drop_cut_tail``, a last line cut short (no newline: a run killed
    while writing it) is removed instead.
    """
    if not os.path.exists(path):
        return
    with open(path) as handle:
        lines = handle.readlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError as err:
            if drop_cut_tail and number == len(lines) and not line.endswith("\n"):
                with open(path, "w") as handle:
                    handle.writelines(lines[:-1])
                return
            raise TuningError(
                f"{path}: record {number} is corrupt or truncated ({err.msg})"
            ) from err


def open_database(work_dir, drop_cut_tail=False):
    """The work dir's ``JSONDatabase`` (created when missing), after checking every record parses.

    Parameters
    ----------
    work_dir : str
    drop_cut_tail : bool
        Drop a last record cut short by a killed run (``tune`` resuming)
        instead of raising.

    Raises
    ------
    TuningError
        Naming the file and record that is corrupt or truncated, or when
        TVM cannot read a record.
    """
    os.makedirs(work_dir, exist_ok=True)
    paths = [os.path.join(work_dir, name) for name in (WORKLOADS, RECORDS)]
    for path in paths:
        _check_lines(path, drop_cut_tail)
    try:
        return ms.database.JSONDatabase(path_workload=paths[0], path_tuning_record=paths[1])
    except Exception as err:  # TVM raises InternalError/TVMError on records it cannot decode
        raise TuningError(f"{work_dir}: TVM cannot read the tuning database: {err}") from err


def read_manifest(work_dir):
    """The work dir's manifest, or None when there is none yet.

    Raises
    ------
    TuningError
        When it is not a tvm-snn tuning manifest.
    """
    path = os.path.join(work_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except json.JSONDecodeError as err:
        raise TuningError(f"{path} is not valid JSON: {err.msg}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != TUNING_FORMAT:
        raise TuningError(f"{path} is not a tvm-snn tuning manifest")
    if manifest.get("version") != TUNING_VERSION:
        raise TuningError(
            f"{path}: manifest version {manifest.get('version')!r}, this tvm-snn reads {TUNING_VERSION}"
        )
    return manifest


def write_manifest(work_dir, target, hashes):
    """Write the manifest (atomically): the target and the model's workloads."""
    manifest = {
        "format": TUNING_FORMAT,
        "version": TUNING_VERSION,
        "target": _target_json(target),
        "model": model_fingerprint(hashes),
        "workloads": sorted(set(hashes)),
        "tvm_version": tvm.__version__,
    }
    path = os.path.join(work_dir, MANIFEST)
    with open(path + ".tmp", "w") as handle:
        json.dump(manifest, handle, indent=2)
    os.replace(path + ".tmp", path)
    return manifest


def _target_json(target):
    """A target as a plain dict (its kind, mcpu, mtriple, num-cores, ...)."""
    exported = tvm.target.Target(target).export()
    return {
        str(k): (v if isinstance(v, (int, float, bool)) else str(v))
        for k, v in exported.items()
        if k not in ("keys", "tag") and v not in ("", None)
    }


def check_manifest(manifest, work_dir, target, hashes):
    """Refuse a work dir made for another target or model.

    Raises
    ------
    TuningError
        Naming what differs.
    """
    path = os.path.join(work_dir, MANIFEST)
    ours = _target_json(target)
    if manifest["target"] != ours:
        raise TuningError(f"{path} was made for target {manifest['target']}, not {ours}")
    if manifest["model"] != model_fingerprint(hashes):
        known = set(manifest.get("workloads", ()))
        matching = len(known & set(hashes))
        raise TuningError(
            f"{path} was made for another model: {matching} of this model's {len(set(hashes))} kernels are in it"
        )


def plan_record(database, task, plan, run_secs, target):
    """A MetaSchedule ``TuningRecord`` saying ``plan`` ran ``task`` in ``run_secs`` (empty: it failed).

    The task's workload is committed to ``database`` first (as MetaSchedule requires).
    """
    sch = tvm.s_tir.Schedule(task.workload)
    sch.annotate(sch.get_sblock(task.plan_block), PLAN_ANNOTATION, plan.to_json())
    args_info = ms.arg_info.ArgInfo.from_prim_func(task.workload["main"])
    secs = [float(s) for s in run_secs] if run_secs else [FAILED_SECS]
    workload = database.commit_workload(task.workload)
    return ms.database.TuningRecord(sch.trace, workload, secs, tvm.target.Target(target), args_info)


def record_plan(record, task):
    """The plan a record's trace annotates (its last ``Annotate`` of ``PLAN_ANNOTATION``).

    Raises
    ------
    TuningError
        When the trace carries no plan of the task's kind.
    """
    values = [
        str(inst.inputs[1])
        for inst in record.trace.insts
        if inst.kind.name == "Annotate" and [str(a) for a in inst.attrs] == [PLAN_ANNOTATION]
    ]
    try:
        return task.plan_type.from_json(values[-1])
    except (IndexError, ValueError) as err:  # FormatError and JSONDecodeError are ValueErrors
        raise TuningError(
            f"a tuning record for {task.label} carries no {task.kind!r} plan: {err}"
        ) from err


def measured(database, task):
    """``{plan JSON: seconds}`` of every record of ``task`` (failed plans: ``FAILED_SECS``)."""
    if not database.has_workload(task.workload):
        return {}
    workload = database.commit_workload(task.workload)
    found = {}
    for record in database.get_all_tuning_records():
        if structural_equal(record.workload.mod, workload.mod):
            secs = [float(s) for s in record.run_secs]
            found[record_plan(record, task).to_json()] = run_time(secs)
    return found
