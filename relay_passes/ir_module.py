"""Rebuilding an IRModule in a module pass (a pass never mutates the module it is given)."""

import tvm


def rebuilt(mod, functions):
    """A new module of ``functions`` (``{GlobalVar: function}``) with ``mod``'s attributes and global infos."""
    return tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)


def with_updates(mod, updates):
    """A new module: ``mod`` with the functions in ``updates`` (``{GlobalVar: function}``) replaced."""
    functions = dict(mod.functions_items())
    functions.update(updates)
    return rebuilt(mod, functions)
