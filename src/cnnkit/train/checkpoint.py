"""Resumable checkpoints: tensors in safetensors, everything else in JSON, written atomically.

A checkpoint is a pair in one folder::

    last.safetensors   model.* (weights), optim.<param>.<name> (optimizer tensors), ema.*,
                       rng.torch (CPU RNG state, uint8), rng.cuda.<i>
                       callback.<i>.<n> (tensors in callback states, e.g. best weights)
    last.json          epoch, global_step, optimizer param groups and scalar state, scheduler and
                       grad-scaler state, callback states, Python/NumPy RNG state, user ``extra``
                       metadata, and the SHA-256 of the tensor file it belongs to

Callback states are keyed ``"<i>:<class name>"``, ``i`` counting the callbacks that have state
(``state_dict()`` not None) in the order given, so loggers and printers may come and go between
a run and its resume, but the stateful callbacks must be the same, in the same order.

Writing keeps the previous pair as ``prev.*``. The order is: write the new tensors to a temp file
(fsync); rename ``last.safetensors`` → ``prev.safetensors``; rename ``last.json`` → ``prev.json``;
rename the temp file → ``last.safetensors``; write ``last.json`` atomically. Whatever moment a
process is killed, one JSON file and a tensor file with the hash it names exist, and
:func:`load_checkpoint` finds that pair (newest first). Nothing is ever unpickled. Temp files
left behind by a killed writer are removed by the next save; a failed write (disk full) raises
CheckpointError and leaves the previous pair loadable.
"""
from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cnnkit.errors import CheckpointError
from cnnkit.run.atomic import atomic_path, atomic_write_text, sha256_file
from cnnkit.train.callbacks import Callback

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_SLOTS = ("last", "prev")
_TENSOR_REF = "__tensor__"  # {"__tensor__": name}: a callback-state tensor in the tensor file


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the tensors (CPU) and the JSON metadata."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    path: Path

    @property
    def epoch(self) -> int:
        return int(self.meta["epoch"])

    @property
    def global_step(self) -> int:
        return int(self.meta["global_step"])

    @property
    def extra(self) -> dict[str, Any]:
        return self.meta.get("extra", {})

    def prefixed(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors whose names start with ``prefix``, with the prefix removed."""
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}


# ---------------------------------------------------------------------------- RNG state
def _python_rng_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _numpy_rng_state() -> list:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def restore_rng(ckpt: Checkpoint) -> None:
    """Restore the torch (CPU and CUDA), Python and NumPy RNGs saved in ``ckpt``."""
    if "rng.torch" in ckpt.tensors:
        torch.set_rng_state(ckpt.tensors["rng.torch"])
    cuda_states = [ckpt.tensors[k] for k in sorted(ckpt.tensors) if k.startswith("rng.cuda.")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    rng = ckpt.meta.get("rng", {})
    if "python" in rng:
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in rng:
        name, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# ---------------------------------------------------------------------------- optimizer state
def _split_optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Optimizer state -> (tensors named ``optim.<param>.<name>``, JSON-able rest)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, per_param in state["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, ckpt: Checkpoint) -> None:
    saved = ckpt.meta.get("optimizer")
    if saved is None:
        raise CheckpointError(f"checkpoint {str(ckpt.path)!r} has no optimizer state; it cannot "
                              "resume training (start a new run instead)")
    state: dict[int, dict[str, Any]] = {}
    for key, value in ckpt.prefixed("optim.").items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in saved["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    if len(saved["param_groups"]) != len(optimizer.param_groups):
        raise CheckpointError(f"checkpoint {str(ckpt.path)!r} has {len(saved['param_groups'])} "
                              f"optimizer parameter groups, the optimizer has "
                              f"{len(optimizer.param_groups)}; use the same optimizer settings")
    groups = []
    for i, (current, group) in enumerate(zip(optimizer.param_groups, saved["param_groups"])):
        if current.get("name") != group.get("name"):
            raise CheckpointError(f"optimizer parameter group {i} is {group.get('name')!r} in "
                                  f"checkpoint {str(ckpt.path)!r} but {current.get('name')!r} "
                                  "in this optimizer; resume with the settings the run was "
                                  "started with")
        # JSON turned tuples (Adam's betas) into lists: give them their original type back.
        groups.append({k: tuple(v) if isinstance(current.get(k), tuple) else v
                       for k, v in group.items()})
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except ValueError as exc:  # a group holds another number of parameters
        raise CheckpointError(f"the optimizer state in checkpoint {str(ckpt.path)!r} does not "
                              f"fit this optimizer ({exc}); resume with the settings the run "
                              "was started with (frozen layers included)") from None
    _match_state_layout(optimizer)


def _match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each per-parameter state tensor its parameter's memory layout.

    Checkpoints store tensors contiguous; a channels-last parameter's ``exp_avg`` must be
    channels-last again, or the fused kernels pair the wrong elements and a resumed run drifts
    from an uninterrupted one.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if (isinstance(value, torch.Tensor) and value.shape == param.shape
                        and value.stride() != param.stride()):
                    optimizer.state[param][name] = torch.empty_like(
                        param, dtype=value.dtype).copy_(value)


# ---------------------------------------------------------------------------- callback state
def _stateful_callbacks(callbacks: Sequence[Callback]) -> list[tuple[str, Callback, dict]]:
    """``("<i>:<class name>", callback, state)`` for each callback whose state is not None."""
    found: list[tuple[str, Callback, dict]] = []
    for cb in callbacks:
        get_state = getattr(cb, "state_dict", None)
        state = get_state() if callable(get_state) else None
        if state is not None:
            found.append((f"{len(found)}:{type(cb).__name__}", cb, state))
    return found


def _pack_state(key: str, state: dict, tensors: dict[str, torch.Tensor]) -> dict:
    """Move the tensors in ``state`` to ``tensors`` (named ``callback.<i>.<n>``), leaving
    ``{"__tensor__": name}`` in their place; refuse values JSON cannot hold."""
    prefix = f"callback.{key.split(':', 1)[0]}."
    count = 0

    def pack(value, where: str):
        nonlocal count
        if isinstance(value, torch.Tensor):
            name = f"{prefix}{count}"
            count += 1
            tensors[name] = value.detach().cpu().contiguous()
            return {_TENSOR_REF: name}
        if isinstance(value, dict):
            return {str(k): pack(v, f"{where}[{k!r}]") for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [pack(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        raise TypeError(f"callback {key} returned state{where} = {value!r} "
                        f"({type(value).__name__}); a callback state may hold only JSON values "
                        "(str, int, float, bool, None, lists, dicts) and tensors")

    return pack(state, "")


def _unpack_state(value, tensors: dict[str, torch.Tensor]):
    if isinstance(value, dict):
        if set(value) == {_TENSOR_REF}:
            return tensors[value[_TENSOR_REF]]
        return {k: _unpack_state(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_unpack_state(v, tensors) for v in value]
    return value


def restore_callbacks(ckpt: Checkpoint, callbacks: Sequence[Callback]) -> None:
    """Load each stateful callback's state from ``ckpt`` (see the module docstring for keys).

    A checkpoint written before callback states were saved loads with a warning: the
    callbacks start afresh, so the resumed run can differ from an uninterrupted one.

    Raises:
        CheckpointError: the stateful callbacks differ from those whose state was saved (the
            message lists both), or a state does not load.
    """
    given = _stateful_callbacks(callbacks)
    saved = ckpt.meta.get("callbacks")
    if saved is None:
        if given:
            log.warning("checkpoint %s holds no callback state (written by an older cnnkit): "
                        "%s start afresh, so this resumed run can differ from an "
                        "uninterrupted one", ckpt.path, ", ".join(k for k, _, _ in given))
        return
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint {str(ckpt.path)!r} has a malformed callback state "
                              f"({type(saved).__name__}, expected an object)")
    if list(saved) != [key for key, _, _ in given]:
        raise CheckpointError(
            f"checkpoint {str(ckpt.path)!r} holds the state of the callbacks "
            f"[{', '.join(saved) or 'none'}], but this run was given "
            f"[{', '.join(k for k, _, _ in given) or 'none'}] (callbacks with state, in order). "
            "Resume with the same stateful callbacks in the same order as the run that wrote "
            "it (cnnkit train --resume RUN and cnnkit finetune --resume RUN rebuild them), or "
            "start a new run")
    for key, cb, _ in given:
        try:
            cb.load_state_dict(_unpack_state(saved[key], ckpt.tensors))
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {str(ckpt.path)!r}: the saved state of callback "
                                  f"{key} does not load ({type(exc).__name__}: {exc}); was it "
                                  "written by another version of that callback?") from None


# ---------------------------------------------------------------------------- save / load
def _model_tensors(model: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(folder: str | Path, *, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, scheduler=None,
                    ema: torch.nn.Module | None = None, scaler=None,
                    callbacks: Sequence[Callback] | None = None, epoch: int = 0,
                    global_step: int = 0, extra: dict[str, Any] | None = None) -> Path:
    """Write ``folder/last.{safetensors,json}`` atomically, keeping the previous pair as ``prev.*``.

    Args:
        folder: checkpoint folder (created if needed).
        model: the model whose ``state_dict`` is saved under ``model.``.
        optimizer, scheduler, ema, scaler: optional training state to resume from.
        callbacks: the Trainer's callbacks; the state of those that have one is saved (load it
            back with :func:`restore_callbacks`).
        epoch: epochs completed.
        global_step: optimizer steps completed.
        extra: JSON-able metadata (config, data seed, best metric, ...).

    Returns:
        The path of the JSON file written.

    Raises:
        CheckpointError: the files could not be written (disk full, ...); the previous
            checkpoint is left intact and loadable.

    Example:
        >>> save_checkpoint("run/checkpoint", model=net, optimizer=opt, epoch=3)  # doctest: +SKIP
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = _model_tensors(model, "model.")
    meta: dict[str, Any] = {"format": FORMAT_VERSION, "epoch": int(epoch),
                            "global_step": int(global_step), "extra": extra or {}}
    if optimizer is not None:
        opt_tensors, meta["optimizer"] = _split_optimizer_state(optimizer)
        tensors.update({k: v.detach().cpu().contiguous() for k, v in opt_tensors.items()})
    if scheduler is not None:
        meta["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        meta["scaler"] = scaler.state_dict()
    if ema is not None:
        tensors.update(_model_tensors(ema, "ema."))
    if callbacks is not None:
        meta["callbacks"] = {key: _pack_state(key, state, tensors)
                             for key, _, state in _stateful_callbacks(callbacks)}
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    meta["rng"] = {"python": _python_rng_state(), "numpy": _numpy_rng_state()}

    last_st, last_js = folder / "last.safetensors", folder / "last.json"
    prev_st, prev_js = folder / "prev.safetensors", folder / "prev.json"
    _remove_stale_temps(folder)
    try:
        with atomic_path(last_st) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "cnnkit-checkpoint"})
            meta["tensors_sha256"] = sha256_file(tmp)
            text = json.dumps(meta, indent=1) + "\n"  # fail on non-JSON state before any rename
            if last_st.exists() and last_js.exists():
                os.replace(last_st, prev_st)
                os.replace(last_js, prev_js)
        atomic_write_text(last_js, text)
    except (OSError, SafetensorError) as exc:  # disk full (safetensors reports it as its own
        # error), quota, permissions: the previous pair is untouched
        raise CheckpointError(f"could not write the epoch-{epoch} checkpoint in {str(folder)!r} "
                              f"({exc}); the previous checkpoint there is intact. Free some "
                              "disk space, then continue with cnnkit train --resume RUN") from exc
    log.info("saved checkpoint epoch %d to %s", epoch, last_js)
    return last_js


def _remove_stale_temps(folder: Path) -> None:
    """Delete temp files left by a writer that was killed mid-write (one writer per folder)."""
    for stale in folder.glob(".last.*.tmp"):
        log.info("removing %s, left by an interrupted checkpoint write", stale)
        stale.unlink(missing_ok=True)


def _try_load(json_path: Path, folder: Path) -> Checkpoint:
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        want = meta["tensors_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint metadata {str(json_path)!r} is unreadable ({exc})")
    for slot in _SLOTS:
        candidate = folder / f"{slot}.safetensors"
        if candidate.is_file() and sha256_file(candidate) == want:
            try:
                tensors = load_file(str(candidate))
            except (SafetensorError, OSError) as exc:
                raise CheckpointError(f"checkpoint tensors {str(candidate)!r} are corrupt "
                                      f"({exc})") from None
            return Checkpoint(tensors, meta, json_path)
    raise CheckpointError(f"checkpoint {str(json_path)!r} names a tensor file with SHA-256 "
                          f"{want[:12]}..., but no .safetensors file in {str(folder)!r} matches "
                          "(the file is corrupt or was replaced)")


def has_checkpoint(folder: str | Path) -> bool:
    """Whether ``folder`` holds any checkpoint (intact or not) to resume from."""
    folder = Path(folder)
    return any((folder / f"{slot}.json").is_file() for slot in _SLOTS)


def load_checkpoint(folder: str | Path) -> Checkpoint:
    """Load the newest intact checkpoint pair from ``folder`` (``last``, else ``prev``).

    Only safetensors and JSON are read: loading never executes code from the files.

    Raises:
        CheckpointError: no intact pair exists (the message names the files and why).

    Example:
        >>> ckpt = load_checkpoint("run/checkpoint")  # doctest: +SKIP
        >>> model.load_state_dict(ckpt.prefixed("model."))  # doctest: +SKIP
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {str(folder)!r} does not exist; "
                              "was the run started with this --out folder?")
    errors = []
    for slot in _SLOTS:
        json_path = folder / f"{slot}.json"
        if not json_path.is_file():
            continue
        try:
            ckpt = _try_load(json_path, folder)
        except CheckpointError as exc:
            errors.append(str(exc))
            log.warning("%s; trying the previous checkpoint", exc)
            continue
        return ckpt
    if not errors:
        raise CheckpointError(f"no checkpoint in {str(folder)!r} (expected last.json and "
                              "last.safetensors)")
    raise CheckpointError("; ".join(errors))


def restore_checkpoint(ckpt: Checkpoint, *, model: torch.nn.Module,
                       optimizer: torch.optim.Optimizer | None = None, scheduler=None,
                       ema: torch.nn.Module | None = None, scaler=None,
                       rng: bool = True) -> None:
    """Copy the state in ``ckpt`` into the given objects (and the global RNGs when ``rng``).

    Raises:
        CheckpointError: the checkpoint does not fit the model (different architecture).
    """
    try:
        model.load_state_dict(ckpt.prefixed("model."))
        if ema is not None and any(k.startswith("ema.") for k in ckpt.tensors):
            ema.load_state_dict(ckpt.prefixed("ema."))
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {str(ckpt.path)!r} does not fit this model: "
                              f"{str(exc).splitlines()[0]}") from None
    if optimizer is not None:
        _restore_optimizer(optimizer, ckpt)
    if scheduler is not None and "scheduler" in ckpt.meta:
        scheduler.load_state_dict(ckpt.meta["scheduler"])
    if scaler is not None and "scaler" in ckpt.meta:
        scaler.load_state_dict(ckpt.meta["scaler"])
    if rng:
        restore_rng(ckpt)
