"""tvm-snn: compile Sub-bit Neural Networks with TVM.

The compiler is loaded lazily, so ``import tvm_snn.train`` works on a machine
without TVM. Public API::

    import tvm_snn
    cm = tvm_snn.compile(model, target="x86")
    result = tvm_snn.tune(model, target="x86", work_dir="tuning", trials=64)
    cm = tvm_snn.compile(model, target="x86", tuning_db="tuning")
    y = cm(x)
    cm.export_library("m.so")
    cm2 = tvm_snn.load("m.so")
    result = tvm_snn.deploy(cm, remote="127.0.0.1:9090")   # a board's server
    cm.export_standalone("m_standalone")                  # a C program on libc
"""

__version__ = "0.1.0"

_LAZY = {
    "compile": ("tvm_snn.compiler", "compile"),
    "tune": ("tvm_snn.tuning.driver", "tune"),
    "deploy": ("tvm_snn.deploy", None),  # a callable package: tvm_snn.deploy.remote.deploy
    "load": ("tvm_snn.compiled", "load"),
    "CompiledModel": ("tvm_snn.compiled", "CompiledModel"),
    "parse_target": ("tvm_snn.target", "parse_target"),
    "LoweringPolicy": ("relay_passes.policy", "LoweringPolicy"),
    "errors": ("tvm_snn.errors", None),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'tvm_snn' has no attribute {name!r}")
    import importlib

    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attr is None else getattr(module, attr)
