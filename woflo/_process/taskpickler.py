"""Functions sent by value: the parent's pickler (cloudpickle's, with one hook) and the worker's rebuild.

A module of its own so that `woflo._process.wire`, which a worker imports to
serve jobs, does not import cloudpickle: the parent imports this module at
its first `wire.dumps_task`, a worker when it unpickles the first function
sent by value (pickle imports it to find `_shared_function`).
"""

from __future__ import annotations

import types
from typing import Any

import cloudpickle
import cloudpickle.cloudpickle as _cp

__all__ = ["TaskPickler"]


class TaskPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle's pickler whose by-value functions share their module's namespace in the worker.

    cloudpickle rebuilds each function sent by value with a globals dict of its
    own, filled with the parent's values of the names it uses; functions of one
    ``dumps`` share it, those of separate ``dumps`` do not. So a ``__main__``
    initializer that sets a global would set it where no task looks. Here the
    rebuild goes through ``_shared_function``/``_fill_globals``
    instead, which use one namespace per module name in the process that
    unpickles.

    Hooks cloudpickle's private ``_dynamic_function_reduce`` (pinned by
    ``tests/process/test_worker_contract.py::test_cloudpickle_hook_is_in_place``);
    if the reduction does not have the shape expected, it is left as it is.
    """

    def _dynamic_function_reduce(self, func: types.FunctionType) -> Any:
        rv = super()._dynamic_function_reduce(func)
        if len(rv) == 6 and rv[0] is _cp._make_function and rv[5] is _cp._function_setstate and len(rv[1]) == 5:
            return (_shared_function, rv[1], rv[2], rv[3], rv[4], _fill_globals)
        return rv


# In a worker: module name -> the namespace its by-value functions share.
_NAMESPACES: dict[str, dict[str, Any]] = {}


def _shared_function(code: types.CodeType, base: dict[str, Any], name: Any, argdefs: Any, closure: Any) -> Any:
    # Runs at unpickling. ``base`` holds the module's __name__, __file__...;
    # the first function of a module makes it the module's namespace.
    module = base.get("__name__")
    if isinstance(module, str):
        namespace = _NAMESPACES.setdefault(module, base)
        if namespace is not base:
            for key, value in base.items():
                namespace.setdefault(key, value)
        base = namespace
    return _cp._make_function(code, base, name, argdefs, closure)


def _fill_globals(func: types.FunctionType, state: tuple[dict[str, Any], dict[str, Any]]) -> None:
    # Runs at unpickling. The parent's values only fill names the namespace does
    # not have yet: what the worker set (an initializer's ``global X``) wins,
    # as in ``ProcessPoolExecutor``'s workers, which never see the parent's
    # later changes either.
    attrs, slots = state
    namespace = func.__globals__
    for key, value in slots["__globals__"].items():
        if key not in namespace:
            namespace[key] = value
    _cp._function_setstate(func, (attrs, {**slots, "__globals__": {}}))
