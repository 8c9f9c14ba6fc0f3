"""`callable_name`: how woflo names a callable, in events, reprs and error messages.

The rule (docs/events.md): woflo names the function, never argument values.
``repr()`` of a ``functools.partial`` or of a callable object shows the values
bound into it (a token, a password), and woflo's messages end up in logs.
This module imports nothing of woflo's, so the worker process can use it too.
"""

from __future__ import annotations

import functools
import types

__all__ = ["callable_name"]


def callable_name(fn: object) -> str:
    """The name of ``fn``, made only of names, never of values.

    - a function, a builtin or a class: its ``__name__`` (``fetch``);
    - a bound method: its qualified name (``Client.fetch``);
    - a ``functools.partial``: the name of the function it wraps;
    - any other callable object: its class's qualified name (``Fetcher``).

    Example:
        >>> import functools
        >>> callable_name(functools.partial(int, "secret-token"))
        'int'
        >>> callable_name("".join)
        'str.join'
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    if isinstance(fn, (types.FunctionType, type)):
        return fn.__name__
    if isinstance(fn, (types.MethodType, types.BuiltinMethodType)):
        # "Client.fetch", "str.join"; a module-level builtin ("len") is one
        # too, with the module as __self__, and its qualified name is its name.
        name = getattr(fn, "__qualname__", None)
        if isinstance(name, str):
            return name
    # A callable object: its own __name__ only if it is a plain string set on
    # it (functools.update_wrapper does), else its class. Never repr(): that
    # is where the object's values are.
    name = getattr(fn, "__name__", None)
    if isinstance(name, str):
        return name
    return type(fn).__qualname__
