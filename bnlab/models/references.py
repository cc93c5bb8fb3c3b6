"""Functions named by reference ("module:function"), as configs name a variant's builder, and the
keyword arguments a builder accepts.

No Keras import of its own: resolving a reference imports the module it names, nothing else.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Callable

_MISSING = object()


def import_function(reference: str) -> Callable:
    """The function a "module:function" reference names, its module imported.

    Args:
        reference: a module's dotted import path, a colon, then the function's name in it.

    Returns:
        The callable.

    Raises:
        ValueError: the reference is malformed, its module cannot be imported, or the module has no
            such callable; the message is one short clause saying which.
    """
    module_name, colon, qualname = reference.partition(":") if isinstance(reference, str) else ("", "", "")
    if not (colon and module_name.strip() and qualname.strip()):
        raise ValueError("not of the form module:function, e.g. mypkg.models:build_cnn")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ValueError(f"module {module_name} cannot be imported: {error}") from error
    except Exception as error:  # the module itself failed while it ran
        reason = (str(error).splitlines() or [""])[0]
        raise ValueError(f"importing module {module_name} failed: {type(error).__name__}: {reason}") from error
    value = _attribute_path(module, qualname)
    if value is _MISSING:
        raise ValueError(f"module {module_name} has no function {qualname}")
    if not callable(value):
        raise ValueError(f"{qualname} in module {module_name} is a {type(value).__name__}, not a function")
    return value


def reference_of(function: Callable) -> str | None:
    """The "module:function" reference that names `function` in another process, if there is one.

    Returns:
        The reference, or None for functions no import can find again: lambdas, functions
        defined inside functions, and those of `__main__` (a script or a notebook).
    """
    module_name = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not module_name or not qualname or module_name == "__main__" or "<" in qualname:
        return None
    module = sys.modules.get(module_name)
    if module is None or _attribute_path(module, qualname) is not function:
        return None
    return f"{module_name}:{qualname}"


def accepted_arguments(function: Callable) -> tuple[str, ...] | None:
    """The keyword arguments `function` accepts, in order; None when it accepts any (**kwargs)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some built-in callables): accept any
        return None
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(parameter.name for parameter in parameters if parameter.kind in keyword)


def function_text(function: Callable | str) -> str:
    """How messages name a builder: its reference when it has one, else its name."""
    if isinstance(function, str):
        return function
    return reference_of(function) or getattr(function, "__qualname__", None) or repr(function)


def _attribute_path(module, qualname: str):
    value = module
    for part in qualname.split("."):
        value = getattr(value, part, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value
