"""tvm_snn.tune on a small sub-bit ResNet: records, compile with the database, resume, and the typed errors."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from snn_models import quantize_, randomize_bn_, resnet18_cifar

import tvm_snn
from schedules.plan import PLAN_ANNOTATION
from tvm_snn.errors import ConfigError, TuningError
from tvm_snn.tuning.records import MANIFEST, RECORDS, WORKLOADS

from common import FLOAT_ATOL, FLOAT_RTOL

ROUND = 4  # trials per round
TRIALS = 40  # the 16 hand plans and 13 hand schedules of the small ResNet, then other plans and schedules
SIZE = 16


def small_snn(seed=0):
    torch.manual_seed(seed)
    model = resnet18_cifar(width=16)
    quantize_(model, seed=seed)
    randomize_bn_(model, seed=seed)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return small_snn()


@pytest.fixture(scope="module")
def example():
    return (torch.randn(1, 3, SIZE, SIZE),)


@pytest.fixture(scope="module")
def tuned(model, example, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp("tune") / "work")
    seen = []
    result = tvm_snn.tune(
        model,
        target="x86",
        work_dir=work_dir,
        trials=TRIALS,
        example_inputs=example,
        trials_per_round=ROUND,
        progress=lambda *state: seen.append(state),
    )
    return work_dir, result, seen


def _record_lines(work_dir):
    with open(os.path.join(work_dir, RECORDS)) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_tune_measures_the_hand_plans_first_and_records_every_trial(tuned):
    work_dir, result, seen = tuned
    records = len(_record_lines(work_dir))
    assert TRIALS <= records <= TRIALS + ROUND  # MetaSchedule's last batch may pass the budget
    assert result.curve[-1]["trials"] == records and seen[-1][1] == TRIALS
    kinds = {task.kind for task in result.tasks}
    assert "pixel-lane" in kinds or "lane" in kinds  # the sub-bit convs are tasks
    assert "dense-conv" in kinds  # the float stem too
    assert "metaschedule" in kinds  # the kernels of the generic schedule (the global pool, ...)
    fallback = [
        task for task in result.tasks if task.kind == "metaschedule" and task.hand_ms is not None
    ]
    assert fallback and all(
        task.best_ms <= task.hand_ms for task in fallback
    )  # seeded with the hand schedule
    measured_tasks = [task for task in result.tasks if task.trials and task.kind != "metaschedule"]
    assert measured_tasks and all(task.hand_ms is not None for task in measured_tasks)
    # never slower than the hand plan: the best is the minimum over a set holding it
    assert all(task.best_ms <= task.hand_ms for task in measured_tasks)
    assert result.curve[-1]["model_ms"] > 0 and result.trials_per_minute > 0


def _compile_and_check(model, example, work_dir):
    cm = tvm_snn.compile(model, target="x86", example_inputs=example, tuning_db=work_dir)
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(cm(x), expected, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
    return cm


def test_compile_takes_the_fastest_plan_of_each_kernel_and_reports_it(tuned, model, example):
    work_dir, result, _ = tuned
    cm = _compile_and_check(model, example, work_dir)
    assert sorted((c.label, c.plan) for c in cm.tuning) == sorted(
        (t.label, t.best_plan) for t in result.tasks
    )
    report = cm.report()
    assert "kernel (tuning)" in report and f"{len(result.tasks)} tunable kernel(s)" in report


def test_an_exported_tuned_model_keeps_its_tuning_report(tuned, model, example, tmp_path):
    cm = tvm_snn.compile(model, target="x86", example_inputs=example, tuning_db=tuned[0])
    path = tmp_path / "tuned.so"
    cm.export_library(path)
    loaded = tvm_snn.load(path)
    assert loaded.tuning == cm.tuning and "kernel (tuning)" in loaded.report()


def _string(value):
    """A string input of a trace, as MetaSchedule's JSON stores it (quoted)."""
    return value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value


def test_compile_builds_tuned_plans_that_still_match_pytorch(tuned, model, example, tmp_path):
    work_dir, result, _ = tuned
    slow = str(tmp_path / "slow_hand")
    shutil.copytree(work_dir, slow)
    hand = {t.hand_plan for t in result.tasks}
    path = os.path.join(slow, RECORDS)
    records = _record_lines(slow)
    for record in records:  # make every hand plan the slowest: compile must take another
        annotations = [
            _string(i[1][1])
            for i in record[1][0][0]
            if i[0] == "Annotate" and i[2] == [PLAN_ANNOTATION]
        ]
        if annotations and annotations[-1] in hand:
            record[1][1] = [1.0]
    with open(path, "w") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)
    cm = _compile_and_check(model, example, slow)
    tuned_choices = [c for c in cm.tuning if c.tuned]
    assert tuned_choices and all(
        c.plan not in hand and c.chosen_ms < c.hand_ms for c in tuned_choices
    )
    assert "tuned" in cm.report()


def test_a_second_run_resumes_without_measuring_a_plan_twice(tuned, model, example, tmp_path):
    work_dir = str(tmp_path / "resumed")
    shutil.copytree(tuned[0], work_dir)
    before = len(_record_lines(work_dir))
    result = tvm_snn.tune(
        model,
        target="x86",
        work_dir=work_dir,
        trials=before + ROUND,
        example_inputs=example,
        trials_per_round=ROUND,
    )
    records = _record_lines(work_dir)
    assert (
        result.curve[0]["trials"] == before and before + ROUND <= len(records) <= before + 2 * ROUND
    )
    plans = [(r[0], _plan_of(r)) for r in records if _plan_of(r) is not None]
    assert len(set(plans)) == len(plans)  # a plan per workload once


def _plan_of(record):
    """The plan a record's trace annotates, or None (a MetaSchedule record of a generic kernel)."""
    found = [
        _string(i[1][1])
        for i in record[1][0][0]
        if i[0] == "Annotate" and i[2] == [PLAN_ANNOTATION]
    ]
    return found[-1] if found else None


def test_a_database_for_another_model_or_target_is_refused(tuned, example):
    work_dir = tuned[0]
    with pytest.raises(TuningError, match="another model"):
        tvm_snn.compile(small_snn(seed=1), target="x86", example_inputs=example, tuning_db=work_dir)
    with pytest.raises(TuningError, match="made for target"):
        tvm_snn.compile(
            small_snn(),
            target={"kind": "llvm", "mcpu": "haswell", "num-cores": 2},
            example_inputs=example,
            tuning_db=work_dir,
        )


def test_a_corrupt_or_truncated_database_names_the_file_and_record(tuned, model, example, tmp_path):
    work_dir = str(tmp_path / "corrupt")
    shutil.copytree(tuned[0], work_dir)
    path = os.path.join(work_dir, RECORDS)
    with open(path) as handle:
        lines = handle.readlines()
    lines[2] = lines[2][: len(lines[2]) // 2] + "\n"  # a record cut in the middle
    with open(path, "w") as handle:
        handle.writelines(lines)
    with pytest.raises(TuningError, match=rf"{RECORDS}: record 3 is corrupt or truncated"):
        tvm_snn.compile(model, target="x86", example_inputs=example, tuning_db=work_dir)
    os.remove(os.path.join(work_dir, MANIFEST))
    with pytest.raises(TuningError, match="not a tvm-snn tuning work dir"):
        tvm_snn.compile(model, target="x86", example_inputs=example, tuning_db=work_dir)
    with open(os.path.join(work_dir, MANIFEST), "w") as handle:
        handle.write("{")
    with pytest.raises(TuningError, match="not valid JSON"):
        tvm_snn.tune(model, work_dir=work_dir, trials=1, example_inputs=example)
    assert os.path.exists(os.path.join(work_dir, WORKLOADS))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"trials": 0}, "trials"), ({"runner": "ssh"}, "runner"), ({"builder": 3}, "builder")],
)
def test_bad_arguments_are_refused(model, example, tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        tvm_snn.tune(
            model, work_dir=str(tmp_path / "w"), example_inputs=example, **{"trials": 1, **kwargs}
        )
