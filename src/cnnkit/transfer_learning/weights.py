"""Load pretrained weights from a run folder, a weights file or a module, with a match report.

Sources (nothing is downloaded and nothing is unpickled):

* a cnnkit run folder (``RUN/weights.safetensors``);
* a ``.safetensors`` file;
* a ``.pt``/``.pth``/``.bin``/``.ckpt`` state dict, read with ``torch.load(weights_only=True)``
  (tensors and plain containers only); a checkpoint that nests the weights under
  ``"state_dict"``, ``"model"`` or ``"model_state_dict"`` is unwrapped;
* an ``nn.Module`` or a mapping of name -> tensor.

Key names: cnnkit's zoo uses torchvision's parameter names, so torchvision's published ResNet,
VGG, AlexNet, DenseNet and GoogLeNet weights load as they are. Also handled:

* the ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (``torch.compile``) prefixes are removed;
* torchvision's old DenseNet keys (``denselayer1.norm.1.weight``) become ``norm1.weight``;
* timm's ResNet weights use the same names as torchvision and load directly. timm's VGG
  (``pre_logits``/``head``), DenseNet and GoogLeNet variants use other layouts: map their keys
  with ``key_map``.
* torchvision's GoogLeNet files carry the auxiliary classifiers (``aux1.*``, ``aux2.*``), which
  cnnkit's GoogLeNet does not have: they are reported as unexpected; pass
  ``key_map=lambda k: None if k.startswith("aux") else k`` to drop them.

Where the public weights are: torchvision's files are listed in its documentation
(https://pytorch.org/vision/stable/models.html, "weights" column; e.g. ResNet-18 is
https://download.pytorch.org/models/resnet18-f37072fd.pth) and timm's on the Hugging Face Hub
(``timm/resnet18.a1_in1k``, file ``model.safetensors``). Download them yourself and pass the path.

Example:
    >>> report = load_pretrained(model, "resnet18-f37072fd.pth")   # doctest: +SKIP
    >>> print(report)                                              # doctest: +SKIP
    loaded 120 of 122 tensors from 'resnet18-f37072fd.pth'
    skipped (classifier replaced): fc.weight (shape (1000, 512) vs (5, 512)), fc.bias ...
"""
from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from cnnkit.errors import CheckpointError
from cnnkit.transfer_learning.head import head_path
from cnnkit.run.folder import WEIGHTS_FILE

log = logging.getLogger(__name__)

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
_NESTED_KEYS = ("state_dict", "model_state_dict", "model")
_STRIP_PREFIXES = ("module.", "_orig_mod.")
# torchvision's DenseNet files predate PyTorch's "no dots in module names" rule.
_DENSENET_OLD = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
# BatchNorm's step counter: absent from files saved before PyTorch 0.4.1, never worth failing on.
_COUNTER_SUFFIX = "num_batches_tracked"


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did with every tensor.

    Attributes:
        source: where the weights came from (for messages).
        matched: model keys loaded from the source.
        missing: model keys with no tensor in the source (left as they were).
        unexpected: source keys the model does not have (ignored).
        shape_mismatch: ``(key, source shape, model shape)`` for keys in both with other shapes.
        head: the classifier's keys, when the head was skipped on purpose (replaced).
    """

    source: str
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(
        default_factory=list)
    head: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Keys that make a strict load fail (BatchNorm step counters never do)."""
        missing = [k for k in self.missing if not k.endswith(_COUNTER_SUFFIX)]
        return missing + self.unexpected + [k for k, _, _ in self.shape_mismatch]

    @property
    def ok(self) -> bool:
        """True when everything matched, apart from a deliberately skipped classifier."""
        return not self.problems

    def __str__(self) -> str:
        total = len(self.matched) + len(self.missing) + len(self.shape_mismatch) + len(self.head)
        lines = [f"loaded {len(self.matched)} of {total} model tensors from {self.source}"]
        if self.head:
            lines.append(f"skipped (classifier replaced, expected): {', '.join(self.head)}")
        for key, src, dst in self.shape_mismatch:
            lines.append(f"skipped: {key}: shape {src} in the source vs {dst} in the model")
        if self.missing:
            lines.append(f"missing from the source (kept as initialised): "
                         f"{_short(self.missing)}")
        if self.unexpected:
            lines.append(f"not in the model (ignored): {_short(self.unexpected)}")
        return "\n".join(lines)


def _short(keys: list[str], limit: int = 12) -> str:
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


# ---------------------------------------------------------------------------- reading sources
def _read_torch_file(path: Path) -> dict:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read {str(path)!r} as a PyTorch state dict "
                              f"(torch.load with weights_only=True: {first}); save plain "
                              "tensors with torch.save(model.state_dict(), path) or use "
                              ".safetensors") from None
    for key in _NESTED_KEYS:
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
            break
    return data


def read_state_dict(source) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of ``source`` (see the module docstring) and a name for messages.

    Raises:
        FileNotFoundError: the path does not exist.
        CheckpointError: an unreadable or corrupt file, or one that holds no tensors.
        TypeError: ``source`` is not a path, a module or a mapping.
    """
    if isinstance(source, nn.Module):
        return dict(source.state_dict()), f"the {type(source).__name__} module"
    if isinstance(source, Mapping):
        tensors, name = dict(source), "the given state dict"
    elif isinstance(source, (str, Path)):
        path = Path(source)
        name = repr(str(path))
        if path.is_dir():
            path = path / WEIGHTS_FILE
            if not path.is_file():
                raise CheckpointError(f"{str(source)!r} is a folder without {WEIGHTS_FILE}; give "
                                      "a run folder of cnnkit train or a weights file")
        if not path.is_file():
            raise FileNotFoundError(f"weights {str(path)!r} do not exist; give a run folder, a "
                                    ".safetensors file or a .pt/.pth state dict")
        if path.suffix.lower() == ".safetensors":
            try:
                tensors = load_file(str(path))
            except (SafetensorError, OSError) as exc:
                raise CheckpointError(f"weights file {str(path)!r} is corrupt ({exc})") from None
        elif path.suffix.lower() in TORCH_SUFFIXES:
            tensors = _read_torch_file(path)
        else:
            raise CheckpointError(f"weights file {str(path)!r} must end in .safetensors or "
                                  f"{', '.join(TORCH_SUFFIXES)}")
    else:
        raise TypeError(f"source must be a run folder, a weights file, an nn.Module or a state "
                        f"dict, got {type(source).__name__}")
    if not isinstance(tensors, Mapping) or not tensors or not all(
            isinstance(v, torch.Tensor) for v in tensors.values()):
        raise CheckpointError(f"{name} does not hold a state dict (a mapping of names to "
                              "tensors)")
    return {str(k): v for k, v in tensors.items()}, name


def normalize_key(key: str) -> str:
    """Remove wrapper prefixes and rename torchvision's old DenseNet keys.

    Example:
        >>> normalize_key("module.features.denseblock1.denselayer1.norm.1.weight")
        'features.denseblock1.denselayer1.norm1.weight'
    """
    changed = True
    while changed:
        changed = False
        for prefix in _STRIP_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    match = _DENSENET_OLD.match(key)
    return match.group(1) + match.group(2) if match else key


def _apply_key_map(tensors: dict[str, torch.Tensor],
                   key_map: Mapping[str, str | None] | Callable[[str], str | None] | None):
    renamed = {}
    for key, value in tensors.items():
        key = normalize_key(key)
        if key_map is not None:
            key = key_map(key) if callable(key_map) else key_map.get(key, key)
        if key is not None:
            renamed[key] = value
    return renamed


# ---------------------------------------------------------------------------- loading
def _head_keys(model: nn.Module, skip_head) -> set[str]:
    if skip_head is False:
        return set()
    try:
        prefix = head_path(model) + "."
    except ValueError:
        return set()
    return {k for k in model.state_dict() if k.startswith(prefix)}


def load_pretrained(model: nn.Module, source, *, strict: bool = True,
                    key_map: Mapping[str, str | None] | Callable[[str], str | None] | None = None,
                    skip_head: bool | str = "auto") -> LoadReport:
    """Copy the matching tensors of ``source`` into ``model`` and report what happened.

    Every model key is either loaded (same name after ``key_map``, same shape) or reported:
    missing from the source, shape mismatch, or the classifier skipped on purpose. Source keys
    the model does not have are reported as unexpected. Nothing is loaded silently in part:
    with ``strict=True`` any problem raises before a single tensor is copied; with
    ``strict=False`` the matching tensors are loaded and the report is logged as a warning.

    Args:
        model: the model to fill (any ``nn.Module``; its classifier may already be replaced).
        source: a run folder, a ``.safetensors`` or ``.pt``/``.pth`` file, an ``nn.Module`` or a
            state dict (see the module docstring).
        strict: raise unless everything matched (a skipped classifier and BatchNorm step
            counters excepted).
        key_map: renames source keys: a dict (old -> new) or a function; ``None`` as the new
            name drops the key.
        skip_head: ``"auto"``: skip the classifier's tensors when their shapes differ (a head
            replaced for other classes); ``True``: never load the classifier; ``False``: treat
            the classifier like every other layer.

    Returns:
        The :class:`LoadReport` (``print`` it for the details).

    Raises:
        CheckpointError: ``strict`` and some key is missing, unexpected or of another shape
            (the message is the report); or an unreadable source.
        ValueError: ``skip_head`` is not True, False or "auto".

    Example:
        >>> model = create("resnet18", num_classes=5, input_size=32)   # doctest: +SKIP
        >>> print(load_pretrained(model, "resnet18-f37072fd.pth"))     # doctest: +SKIP
    """
    if skip_head not in (True, False, "auto"):
        raise ValueError(f"skip_head must be True, False or 'auto', got {skip_head!r}")
    tensors, name = read_state_dict(source)
    tensors = _apply_key_map(tensors, key_map)
    target = model.state_dict()
    head_keys = _head_keys(model, skip_head)
    report = LoadReport(source=name)
    to_load = {}
    for key, current in target.items():
        if key not in tensors:
            (report.head if key in head_keys and skip_head is True else report.missing
             ).append(key)
            continue
        value = tensors[key]
        if key in head_keys and (skip_head is True or value.shape != current.shape):
            report.head.append(key)
        elif value.shape != current.shape:
            report.shape_mismatch.append((key, tuple(value.shape), tuple(current.shape)))
        else:
            to_load[key] = value
            report.matched.append(key)
    report.unexpected = [k for k in tensors if k not in target]
    if strict and not report.ok:
        raise CheckpointError(f"the weights do not fit the model (strict=True):\n{report}\n"
                              f"{_stem_hint(model, report)}"
                              "Fix the key names with key_map=..., or pass strict=False to load "
                              "what matches")
    if not report.ok:
        log.warning("partial load (strict=False):\n%s", report)
    else:
        log.info("%s", report)
    model.load_state_dict(to_load, strict=False)
    return report


# ResNet stems by their first conv's kernel (cnnkit.models.zoo.resnet): 7x7/2 + max pool, or 3x3/1.
_STEM_OF_KERNEL = {7: "imagenet", 3: "small"}


def _stem_hint(model: nn.Module, report: LoadReport) -> str:
    """A line naming the stem the weights were trained with, when the stem is what differs.

    ImageNet-layout weights (torchvision's, a 224-pixel run) have a 7x7 ``conv1``; a ResNet
    created for inputs <= 64 pixels gets the small 3x3 stem by default, so only that tensor
    fails. Empty when the model has no ``stem`` or the mismatch is elsewhere.
    """
    model_stem = getattr(model, "stem", None)
    for key, source_shape, _ in report.shape_mismatch:
        if key == "conv1.weight" and isinstance(model_stem, str) and len(source_shape) == 4:
            stem = _STEM_OF_KERNEL.get(source_shape[-1])
            if stem and stem != model_stem:
                arch = getattr(model, "architecture", None)
                name = arch.get("name") if isinstance(arch, dict) else None
                name = name or type(model).__name__.lower()
                return (f"The weights were trained with stem={stem!r} (conv1 "
                        f"{source_shape[-2]}x{source_shape[-1]}) and the model has "
                        f"stem={model_stem!r} (chosen for its input size): create it with "
                        f"cnnkit.models.create({name!r}, ..., stem={stem!r}) (CLI: "
                        f"--stem {stem}) so every tensor loads.\n")
    return ""
