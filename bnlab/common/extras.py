"""Whether an optional extra (a Keras backend, MLflow, TensorBoard, Dask) can be used here, and,
when it cannot, the one line that says how to install it. Imports no other bnlab module."""

from __future__ import annotations

import importlib
import importlib.util


def install_command(extra: str | None, package: str = "") -> str:
    """How to install bnlab's optional `extra` (None: `package`, a dependency of bnlab itself).

    Example:
        >>> print(install_command("mlflow"))
        pip install -e ".[mlflow]" from a bnlab checkout, or the extra 'mlflow' when installing a wheel
    """
    if extra is None:
        return f"pip install {package}"
    # bnlab is on no package index: `pip install bnlab[mlflow]` would find nothing, or another project
    return f'pip install -e ".[{extra}]" from a bnlab checkout, or the extra \'{extra}\' when installing a wheel'


def missing_extra(module: str, extra: str | None, *, load: bool = True, name: str | None = None) -> str | None:
    """One line saying why `module` cannot be used here and how to install it; None when it can.

    Args:
        module: what the feature imports, e.g. "mlflow" or "tensorboard.summary.v2".
        extra: bnlab's optional extra that installs it ("mlflow"); None for a dependency of
            bnlab itself, installed by its own name.
        load: import the module, which tells "not installed" from "fails to import"; False
            only looks for it (a Keras backend must not start before the CLI chooses one).
        name: how the line names the package (default: the top-level module's name).

    Returns:
        None, or "{name} is not installed: {install command}" or
        "{name} failed to import ({error}): {install command}".
    """
    package = module.split(".")[0]
    name = name or package
    install = install_command(extra, package)
    if not load:
        return None if importlib.util.find_spec(package) is not None else f"{name} is not installed: {install}"
    try:
        importlib.import_module(module)
    except ImportError as error:
        # a package that is there but whose own import fails names another module in its error
        absent = isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] == package
        return f"{name} {'is not installed' if absent else f'failed to import ({error})'}: {install}"
    return None
