"""The tree's structure: an acyclic, layered import graph, no test importing a test, no
``sys.path`` hacks, every constant named once (see :mod:`import_graph`).

The checks on the repository come first; the checker's own tests, on small trees
written into ``tmp_path``, show that each rule can fail.
"""

import textwrap
from pathlib import Path

import pytest
from import_graph import (
    Tree,
    constant_violations,
    cross_test_import_violations,
    cycle_violations,
    layer_violations,
    report,
    sys_path_violations,
    tolerance_violations,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tree():
    return Tree(ROOT)


def test_the_scan_sees_the_packages_and_their_imports(tree):
    """The checks below are not vacuous: the scan finds every layer, and the imports between them."""
    for module in ("tvm_snn", "tvm_snn.train", "relay_passes", "schedules.subbit", "hw_targets", "tests.common"):
        assert module in tree.paths
    assert not any(name.startswith((".", "tvm_snn.egg-info")) for name in tree.paths)
    edges = {(edge.source, edge.target) for edge in tree.imports()}
    assert ("relay_passes.schedule_dense_fallback", "schedules.dense_cpu") in edges
    assert ("tests.test_structure", "tests.import_graph") in edges


def test_first_party_import_graph_has_no_cycle(tree):
    violations = cycle_violations(tree)
    assert not violations, report(violations)


def test_layers_import_only_downwards(tree):
    violations = layer_violations(tree)
    assert not violations, report(violations)


def test_no_test_module_imports_another(tree):
    violations = cross_test_import_violations(tree)
    assert not violations, report(violations)


def test_no_sys_path_manipulation(tree):
    violations = sys_path_violations(tree)
    assert not violations, report(violations)


def test_every_constant_is_defined_in_one_module(tree):
    violations = constant_violations(tree)
    assert not violations, report(violations)


def test_tolerances_live_in_tests_common(tree):
    violations = tolerance_violations(tree)
    assert not violations, report(violations)


def write_tree(root, files):
    """Write ``files`` (path -> source) under ``root`` and parse the result.

    Parameters
    ----------
    root : pathlib.Path
    files : dict of str to str
        Sources, dedented.

    Returns
    -------
    Tree
    """
    for path, source in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(textwrap.dedent(source))
    return Tree(root)


def messages(violations):
    return [violation.message for violation in violations]


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    tree = write_tree(
        tmp_path,
        {
            "schedules/__init__.py": "",
            "schedules/kernel.py": "from schedules import plan\n",
            "schedules/plan.py": "def build():\n    from schedules.kernel import thing\n",
            "schedules/leaf.py": "import schedules.plan\n",
        },
    )
    (violation,) = cycle_violations(tree)
    assert "schedules.kernel -> schedules.plan -> schedules.kernel" in violation.message
    assert "schedules/plan.py:2 (in build)" in violation.message
    assert "leaf" not in violation.message


def test_an_acyclic_tree_has_no_cycle(tmp_path):
    tree = write_tree(
        tmp_path,
        {
            "schedules/__init__.py": "from schedules.kernel import thing\n",
            "schedules/kernel.py": "from schedules import plan\nthing = plan\n",
            "schedules/plan.py": "import numpy\n",
        },
    )
    assert cycle_violations(tree) == []


def test_a_three_module_cycle_names_its_modules_in_order(tmp_path):
    tree = write_tree(
        tmp_path,
        {
            "relay_passes/__init__.py": "",
            "relay_passes/a.py": "import relay_passes.b\n",
            "relay_passes/b.py": "from . import c\n",
            "relay_passes/c.py": "class K:\n    def f(self):\n        import relay_passes.a\n",
        },
    )
    (violation,) = cycle_violations(tree)
    assert "relay_passes.a -> relay_passes.b -> relay_passes.c -> relay_passes.a" in violation.message
    assert "(in K.f)" in violation.message


def test_from_package_import_module_is_an_import_of_the_submodule(tmp_path):
    tree = write_tree(
        tmp_path,
        {
            "schedules/__init__.py": "from schedules.subbit import SubBitConv\n",
            "schedules/subbit.py": "SubBitConv = object\n",
            "relay_passes/__init__.py": "",
            "relay_passes/p.py": (
                "from schedules import subbit\nfrom schedules import SubBitConv\n"
                "import importlib\nM = importlib.import_module('schedules.subbit')\n"
            ),
        },
    )
    targets = [(edge.target, edge.first_party) for edge in tree.imports("relay_passes.p")]
    assert targets == [("schedules.subbit", True), ("schedules", True), ("importlib", False), ("schedules.subbit", True)]


def layering_tree(tmp_path, files):
    base = {
        "tvm_snn/__init__.py": "",
        "tvm_snn/errors.py": "class Error(Exception):\n    pass\n",
        "tvm_snn/schema.py": "UNIT = 9\n",
        "tvm_snn/train/__init__.py": "",
        "schedules/__init__.py": "",
        "schedules/subbit.py": "from tvm_snn.errors import Error\nfrom tvm_snn import schema\n",
        "relay_passes/__init__.py": "",
        "relay_passes/detect.py": "import tvm\nfrom schedules.subbit import Error\n",
        "hw_targets/__init__.py": "from schedules import subbit\n",
    }
    return write_tree(tmp_path, {**base, **files})


def test_allowed_imports_break_no_layer(tmp_path):
    assert layer_violations(layering_tree(tmp_path, {})) == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"schedules/plan.py": "def f():\n    from relay_passes import detect\n"},
            "schedules.plan imports relay_passes.detect: schedules may import only schedules",
        ),
        (
            {"schedules/plan.py": "import tvm_snn.compiler\n", "tvm_snn/compiler.py": ""},
            "schedules.plan imports tvm_snn.compiler: schedules may import only",
        ),
        (
            {"relay_passes/byoc.py": "from hw_targets import compile_for\n"},
            "relay_passes.byoc imports hw_targets: relay_passes never imports hw_targets",
        ),
        (
            {"relay_passes/api.py": "from tvm_snn import compile\n"},
            "relay_passes.api imports tvm_snn: relay_passes may import only",
        ),
        (
            {"tvm_snn/schema.py": "from tvm_snn.errors import Error\n"},
            "tvm_snn.schema imports tvm_snn.errors: tvm_snn.schema imports no first-party module",
        ),
        (
            {"tvm_snn/train/layers.py": "def f():\n    import tvm.tirx\n"},
            "tvm_snn.train.layers imports tvm.tirx: tvm_snn.train never imports",
        ),
        (
            {"tvm_snn/train/export.py": "from schedules.subbit import Error\n"},
            "tvm_snn.train.export imports schedules.subbit: tvm_snn.train never imports",
        ),
    ],
)
def test_a_layering_violation_is_found(tmp_path, files, expected):
    found = messages(layer_violations(layering_tree(tmp_path, files)))
    assert any(expected in message for message in found), found


def test_train_never_loads_tvm_through_another_first_party_module(tmp_path):
    tree = layering_tree(
        tmp_path,
        {
            "tvm_snn/train/layers.py": "from tvm_snn import helpers\n",
            "tvm_snn/helpers.py": "def f():\n    from tvm import tirx\n",
        },
    )
    (violation,) = layer_violations(tree)
    assert "tvm_snn.train.layers -> tvm_snn.helpers imports tvm at tvm_snn/helpers.py:2 (in f)" in violation.message


def test_train_never_loads_tvm_through_a_parent_package(tmp_path):
    tree = layering_tree(tmp_path, {"tvm_snn/__init__.py": "import tvm\n", "tvm_snn/train/layers.py": "X = 1\n"})
    found = messages(layer_violations(tree))
    assert any("tvm_snn.train -> tvm_snn imports tvm" in message for message in found), found


def test_a_test_module_importing_another_is_found(tmp_path):
    tree = write_tree(
        tmp_path,
        {
            "tests/common.py": "",
            "tests/helpers.py": "",
            "tests/test_sub/strategies.py": "",
            "tests/test_sub/test_a.py": "import common\nfrom test_sub import strategies\nfrom helpers import x\n",
            "tests/test_sub/test_b.py": "def f():\n    from test_sub.test_a import make\n",
            "tests/test_c.py": "from test_sub import test_a\n",
        },
    )
    assert sorted(messages(cross_test_import_violations(tree))) == [
        "test module tests.test_c imports test module tests.test_sub.test_a",
        "test module tests.test_sub.test_b imports test module tests.test_sub.test_a (in f)",
    ]


def test_sys_path_manipulation_is_found(tmp_path):
    tree = write_tree(
        tmp_path,
        {
            "benchmarks/run.py": "import sys as system\nsystem.path.insert(0, '.')\n",
            "tools/x.py": "from sys import path\npath.append('..')\n",
            "tools/site_hack.py": "import site\nsite.addsitedir('lib')\n",
            "tools/fine.py": "import os\nimport sys\nprint(os.path.join('a', 'b'), sys.argv)\n",
        },
    )
    found = sys_path_violations(tree)
    assert sorted((str(v.path), v.line) for v in found) == [
        ("benchmarks/run.py", 2),
        ("tools/site_hack.py", 2),
        ("tools/x.py", 2),
    ]


def test_a_duplicated_constant_is_found(tmp_path):
    tree = write_tree(
        tmp_path,
        {
            "schedules/__init__.py": "from schedules.a import LIMIT\n",
            "schedules/a.py": "LIMIT = 1\nlower = 1\n",
            "relay_passes/b.py": "import os\nif os.name:\n    LIMIT = 2\nlower = 2\n\ndef f():\n    ONLY_LOCAL = 3\n",
            "relay_passes/c.py": "from schedules.a import LIMIT\nONLY_LOCAL = 4\n_PRIVATE, OTHER = 1, 2\n",
            "tests/test_x.py": "LIMIT = 5\n",
        },
    )
    (violation,) = constant_violations(tree)
    assert violation.message.startswith("LIMIT is defined in 2 modules (relay_passes/b.py:3, schedules/a.py:1)")


def test_a_tolerance_outside_tests_common_is_found(tmp_path):
    tree = write_tree(
        tmp_path,
        {
            "tests/common.py": "KERNEL_RTOL = 1e-5\nKERNEL_ATOL = 1e-4\n",
            "tests/test_a.py": "from common import KERNEL_RTOL\nRTOL = 1e-5\nMY_ATOL = 1e-3\nATOLL = 1\n",
            "schedules/subbit.py": "DENSE_ATOL = 1e-6\n",
        },
    )
    assert [(str(v.path), v.line) for v in tolerance_violations(tree)] == [("tests/test_a.py", 2), ("tests/test_a.py", 3)]


def test_the_report_groups_violations_by_file(tmp_path):
    tree = write_tree(tmp_path, {"a/x.py": "import sys\nsys.path.append(1)\nsys.path.append(2)\n", "b.py": "import sys\nsys.path = []\n"})
    assert report(sys_path_violations(tree)).splitlines()[:4] == [
        "3 violation(s):",
        "a/x.py",
        "  line 2: a.x uses sys.path: import through installed packages or pytest's pythonpath instead",
        "  line 3: a.x uses sys.path: import through installed packages or pytest's pythonpath instead",
    ]
