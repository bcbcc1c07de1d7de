"""Package attributes imported on first use (PEP 562), so that the CLI starts without torch.

``cnnkit --help`` builds every sub-command's parser; the parsers need settings (choices,
defaults, recipe names) from packages whose other modules import torch (1–3 s). A package
``__init__`` that names its public attributes with :func:`lazy_attributes` imports a
submodule only when one of its names is used.

Example:
    >>> __getattr__, __dir__ = lazy_attributes(__name__, {"load_run": "cnnkit.run.folder"},
    ...                                        globals())  # doctest: +SKIP
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, names: Mapping[str, str], namespace: dict[str, Any]
                    ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``name`` -> its module, on first use.

    Args:
        package: the package's ``__name__`` (for the AttributeError).
        names: public name -> the module that defines it.
        namespace: the package's ``globals()``; a loaded name is cached there.
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        # import cost: a package's submodules load when one of their names is first used
        value = getattr(importlib.import_module(names[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *names})

    return __getattr__, __dir__
