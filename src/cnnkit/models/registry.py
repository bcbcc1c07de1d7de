"""The model registry: classic architectures by name, built with any classes, channels and size.

Zoo modules register a builder with ``@register(name, description=..., default_input_size=...)``;
``create(name, ...)`` calls it, and the model remembers how it was built (``model.architecture``)
so that ``build_architecture`` can rebuild it from a JSON file. The zoo modules import this one
to register themselves; ``cnnkit.models`` (always imported first, as the package) imports the
zoo, so the registry is full before anyone asks it for a name.

Example:
    >>> from cnnkit.models.registry import create, names
    >>> model = create("resnet18", num_classes=10, in_channels=3, input_size=32)
    >>> "lenet5" in names()
    True
"""
from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cnnkit._checks import check_positive_int, standardize_tuple
from cnnkit.models.sequential import Sequential

_REGISTRY: dict[str, ModelInfo] = {}


@dataclass(frozen=True)
class ModelInfo:
    """One registry entry: what ``cnnkit models`` prints, and the builder."""

    name: str
    description: str
    default_input_size: tuple[int, int]
    builder: Callable[..., nn.Module]
    origin: str  # module.function that registered it; re-importing that module is harmless


def _resolve_input_size(input_size, default: tuple[int, int]) -> tuple[int, int]:
    if input_size is None:
        return default
    return standardize_tuple(input_size, 2, "input_size")


def _json_kwargs(name: str, kwargs: dict) -> dict:
    """The extra kwargs as JSON values (tuples become lists); TypeError if one is not JSON-able."""
    try:
        return json.loads(json.dumps(kwargs))
    except TypeError as err:
        raise TypeError(
            f"the keyword arguments of {name!r} must be JSON-able (numbers, strings, lists) so "
            f"the architecture can be saved, got {kwargs!r}"
        ) from err


def register(name: str, *, description: str, default_input_size: int | tuple[int, int]):
    """Decorator that adds a model builder to the registry under ``name``.

    The builder is called as ``builder(num_classes=..., in_channels=..., input_size=(H, W),
    **kwargs)`` and must return a ``cnnkit.models.base.ZooModel``. The decorated function
    resolves ``input_size`` (None -> ``default_input_size``, int -> square) and records the
    registry name and extra kwargs on the model for ``model.architecture``.

    Raises:
        ValueError: ``name`` is already registered by another function (registering the same
            function again, as a module reload does, just replaces the entry).

    Example:
        >>> @register("tiny", description="a tiny net", default_input_size=8)  # doctest: +SKIP
        ... def tiny(*, num_classes, in_channels, input_size): ...
    """
    default = standardize_tuple(default_input_size, 2, "default_input_size")

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        origin = f"{builder.__module__}.{builder.__qualname__}"
        if name in _REGISTRY and _REGISTRY[name].origin != origin:
            raise ValueError(f"model name {name!r} is already registered by "
                             f"{_REGISTRY[name].origin}; choose another name")

        @functools.wraps(builder)
        def build(num_classes: int = 10, in_channels: int = 3, input_size=None, **kwargs):
            check_positive_int(num_classes, "num_classes")
            check_positive_int(in_channels, "in_channels")
            size = _resolve_input_size(input_size, default)
            recorded = _json_kwargs(name, kwargs)
            model = builder(num_classes=num_classes, in_channels=in_channels, input_size=size,
                            **kwargs)
            for choice in ("stem", "layout"):  # chosen from the input size when not given:
                value = getattr(model, choice, None)  # record it, so a saved run rebuilds the
                if recorded.get(choice) is None and isinstance(value, str):  # same layers even
                    recorded[choice] = value  # if the size rule changes later
            model.registry_name = name
            model.registry_kwargs = recorded
            return model

        _REGISTRY[name] = ModelInfo(name, description, default, build, origin)
        return build

    return decorator


def names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def describe(name: str) -> ModelInfo:
    """The registry entry of ``name`` (description and default input size).

    Raises:
        ValueError: unknown name; the message lists the names and suggests the closest one.
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=1)
        suggestion = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown model name {name!r}.{suggestion} Available models: "
            f"{', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def list_models() -> list[ModelInfo]:
    """Every registry entry, sorted by name (what ``cnnkit models`` prints)."""
    return [describe(name) for name in names()]


def create(name: str, num_classes: int = 10, in_channels: int = 3, input_size=None,
           **kwargs) -> nn.Module:
    """Build the registered model ``name``.

    Args:
        name: a name from ``names()``, e.g. ``"resnet18"``.
        num_classes: number of output logits.
        in_channels: channels of the input images (1 for grey, 3 for RGB).
        input_size: (H, W) or an int for square images; None takes the model's default.
        **kwargs: model-specific options (e.g. ``stem="small"`` for ResNet).

    Shape:
        (N, in_channels, H, W) -> (N, num_classes) logits.

    Raises:
        ValueError: unknown name, or an input size the model's arithmetic cannot take (the
            message names the layer and the smallest size that works).

    Example:
        >>> create("lenet5", num_classes=10, in_channels=1, input_size=28).input_size
        (28, 28)
    """
    return describe(name).builder(num_classes=num_classes, in_channels=in_channels,
                                  input_size=input_size, **kwargs)


def build_architecture(arch: dict) -> nn.Module:
    """Rebuild a model from its ``architecture`` dict (registry or spec).

    Args:
        arch: ``{"type": "registry", "name": ..., "kwargs": {...}}`` or
            ``{"type": "spec", "spec": "...", "input_shape": [C, H, W]}`` (handed to
            ``cnnkit.models.sequential.Sequential.from_architecture``).

    Raises:
        TypeError: ``arch`` is not a dict.
        ValueError: unknown ``type`` or missing keys.

    Example:
        >>> model = build_architecture(create("lenet5").architecture)
    """
    if not isinstance(arch, dict):
        raise TypeError(f"arch must be a dict with a 'type' key, got {arch!r}")
    kind = arch.get("type")
    required = {"registry": ("name", "kwargs"), "spec": ("spec",)}
    if kind not in required:
        raise ValueError(f"arch['type'] must be 'registry' or 'spec', got {kind!r} in {arch!r}")
    missing = [key for key in required[kind] if key not in arch]
    if missing:
        raise ValueError(f"arch of type {kind!r} lacks the keys {missing!r}: got {arch!r}")
    if kind == "registry":
        return create(arch["name"], **arch["kwargs"])
    return Sequential.from_architecture(arch)  # reads the stored [C, H, W] input shape back
