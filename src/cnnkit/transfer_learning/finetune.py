"""Fine-tuning schedules: the head first, then unfreeze (all at once or group by group) with
discriminative learning rates, and ``finetune`` — a whole run from pretrained weights.

Learning rates: with layer groups g = 0 (input) ... G (the head) and depth d = G − g from the
head, group g trains at ``lr · decay^d`` (ULMFiT's discriminative rates): the head at ``lr``,
the layer before it at ``lr · decay``, and so on, so early, generic filters move least.

Schedule (:class:`GradualUnfreezing`, a Trainer callback), epochs counted from 1:

* epochs 1 .. K (``head_epochs``): only what was trainable at the start (the head) trains;
* epoch K + 1: the frozen groups nearest the head are unfrozen — all of them at once
  (``every=None``) or one more group every ``every`` epochs — and each is added to the
  optimizer as its own parameter group at its discriminative rate, following the run's
  learning-rate schedule from there on;
* groups up to and including ``frozen_up_to`` (a group name or index) are never unfrozen.

Resuming: the callback's state (the groups unfrozen so far) is saved in the checkpoints. On a
resume it unfreezes the groups its schedule had unfrozen by the checkpoint's epoch and adds
their optimizer groups *before* the optimizer and scheduler state are loaded, so the resumed
run equals an uninterrupted one (``finetune(resume=RUN)``, ``cnnkit finetune --resume RUN``); a
checkpoint written under another schedule is refused with the two lists of groups.

Example:
    >>> from cnnkit.models import create
    >>> model = create("resnet18", num_classes=5, input_size=32)
    >>> [round(g["lr"], 4) for g in discriminative_param_groups(model, lr=1e-2, decay=0.5)]
    [0.0003, 0.0006, 0.0013, 0.0025, 0.005, 0.01]
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from torch import nn

from cnnkit._checks import check_positive_int
from cnnkit.errors import CheckpointError, TrainingError
from cnnkit.models.registry import build_architecture
from cnnkit.models.sequential import Sequential
from cnnkit.run.atomic import atomic_write_text
from cnnkit.run.folder import MODEL_FILE, read_json
from cnnkit.train import distributed
from cnnkit.train import run_folder as rf
from cnnkit.train.callbacks import Callback
from cnnkit.train.checkpoint import has_checkpoint
from cnnkit.train.config import TrainConfig
from cnnkit.train.pipeline import default_run_folder, train
from cnnkit.transfer_learning.freeze import freeze, group_index, unfreeze
from cnnkit.transfer_learning.groups import LayerGroup, layer_groups
from cnnkit.transfer_learning.transfer import pretrained_model, transfer
from cnnkit.transfer_learning.weights import LoadReport

log = logging.getLogger(__name__)

FREEZE_CHOICES = ("none", "all-but-head", "up-to:NAME")
FINETUNE_FILE = "finetune.json"


def _check_decay(decay) -> float:
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1:
        raise ValueError(f"lr_decay must be a number in (0, 1], got {decay!r}; 1 gives every "
                         "layer the same rate, 0.5 halves it per layer group towards the input")
    return float(decay)


def group_lrs(groups: list[LayerGroup], lr: float, decay: float) -> list[float]:
    """``lr · decay^d`` for each group, d = its distance from the head (the last group)."""
    decay = _check_decay(decay)
    return [lr * decay ** (len(groups) - 1 - i) for i in range(len(groups))]


def discriminative_param_groups(model: nn.Module, *, lr: float,
                                decay: float = 0.5) -> list[dict]:
    """Optimizer parameter groups, one per layer group, at ``lr · decay^depth``.

    Frozen parameters are left out (``build_optimizer`` would drop them anyway); each group
    dict has ``params``, ``lr`` and ``name`` (the layer group's name).

    Example:
        >>> opt = torch.optim.SGD(discriminative_param_groups(model, lr=0.01), lr=0.01)  # doctest: +SKIP
    """
    groups = layer_groups(model)
    result = []
    for group, group_lr in zip(groups, group_lrs(groups, lr, decay)):
        params = [p for p in group.parameters(model) if p.requires_grad]
        if params:
            result.append({"params": params, "lr": group_lr, "name": group.name})
    return result


def add_param_group(trainer, params: list[nn.Parameter], lr: float, name: str) -> None:
    """Add ``params`` to ``trainer.optimizer`` at peak rate ``lr``, under the run's schedule.

    The new group starts at ``lr`` times the schedule's current factor, and the Trainer's
    ``LambdaLR`` learns the group (its ``base_lrs`` and ``lr_lambdas`` grow by one).

    Raises:
        TrainingError: the trainer's scheduler is not a ``LambdaLR`` (cnnkit's schedules are).
    """
    scheduler = trainer.scheduler
    factor = 1.0
    if scheduler is not None:
        lambdas = getattr(scheduler, "lr_lambdas", None)
        if not lambdas:
            raise TrainingError(f"cannot add layers to a {type(scheduler).__name__} scheduler; "
                                "gradual unfreezing needs cnnkit's schedules (LambdaLR)")
        factor = lambdas[0](scheduler.last_epoch)
    trainer.optimizer.add_param_group({"params": params, "lr": lr * factor,
                                       "initial_lr": lr, "name": name})
    if scheduler is not None:
        scheduler.base_lrs.append(lr)
        scheduler.lr_lambdas.append(scheduler.lr_lambdas[0])


class GradualUnfreezing(Callback):
    """Unfreeze layer groups after ``head_epochs``, at discriminative rates (module docstring).

    Args:
        head_epochs: epochs with only the initially trainable part (the head) training (K ≥ 0).
        every: unfreeze one more group every this many epochs (None: all at once at K + 1).
        lr_decay: rate factor per group towards the input (1: one rate for all).
        frozen_up_to: layer group (name or index) up to which, inclusive, the model stays
            frozen (None: the whole model unfreezes).
        lr: the head's peak rate (None: the trainer's ``config.lr``).

    Example:
        >>> trainer = Trainer(model, config, callbacks=[GradualUnfreezing(head_epochs=2)])  # doctest: +SKIP
    """

    def __init__(self, head_epochs: int = 1, *, every: int | None = None, lr_decay: float = 0.5,
                 frozen_up_to: str | int | None = None, lr: float | None = None):
        if isinstance(head_epochs, bool) or not isinstance(head_epochs, int) or head_epochs < 0:
            raise ValueError(f"head_epochs must be an int >= 0, got {head_epochs!r}")
        self.head_epochs = head_epochs
        self.every = None if every is None else check_positive_int(every, "every")
        self.lr_decay = _check_decay(lr_decay)
        self.frozen_up_to = frozen_up_to
        self.lr = lr
        self.pending: list[tuple[LayerGroup, float]] = []
        self.unfrozen: list[str] = []
        self._saved_unfrozen: list[str] | None = None  # from a checkpoint, checked on resume

    def on_train_begin(self, trainer) -> None:
        model = trainer.model
        groups = layer_groups(model)
        lrs = group_lrs(groups, self.lr if self.lr is not None else trainer.config.lr,
                        self.lr_decay)
        keep = 0 if self.frozen_up_to is None else (
            group_index(groups, self.frozen_up_to, "frozen_up_to") + 1)
        frozen = [(g, lr) for i, (g, lr) in enumerate(zip(groups, lrs))
                  if i >= keep and any(not p.requires_grad for p in g.parameters(model))]
        self.pending = frozen[::-1]  # nearest the head first

    def _due(self, epoch: int) -> int:
        """How many groups should be unfrozen at the start of ``epoch``."""
        if epoch <= self.head_epochs:
            return 0
        if self.every is None:
            return len(self.pending) + len(self.unfrozen)
        return 1 + (epoch - self.head_epochs - 1) // self.every

    def _unfreeze_next(self, trainer) -> tuple[str, float]:
        group, lr = self.pending.pop(0)
        unfreeze(trainer.model, list(group.modules))
        add_param_group(trainer, group.parameters(trainer.model), lr, group.name)
        self.unfrozen.append(group.name)
        return group.name, lr

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        while self.pending and len(self.unfrozen) < self._due(epoch):
            name, lr = self._unfreeze_next(trainer)
            log.info("epoch %d: unfroze layer group %r at lr %.3g", epoch, name, lr)

    def state_dict(self) -> dict:
        return {"unfrozen": list(self.unfrozen)}

    def load_state_dict(self, state: dict) -> None:
        self._saved_unfrozen = [str(name) for name in state["unfrozen"]]

    def on_resume(self, trainer, epoch: int) -> None:
        """Unfreeze what the schedule had unfrozen by the end of ``epoch``, adding its groups.

        Runs before the optimizer and scheduler state are loaded: their parameter groups then
        match the checkpoint's (rates and moments come from the checkpoint).

        Raises:
            CheckpointError: the checkpoint had unfrozen other groups (another schedule or
                model).
        """
        self.unfrozen = []
        self.on_train_begin(trainer)
        expected = [group.name for group, _ in self.pending[:self._due(epoch)]]
        saved = self._saved_unfrozen
        if saved is not None and saved != expected:
            raise CheckpointError(
                f"the checkpoint (epoch {epoch}) had unfrozen the layer groups {saved}, but "
                f"{self._describe()} unfreezes {expected} by epoch {epoch}; resume with the "
                "fine-tuning settings the run was started with (RUN/finetune.json; "
                "cnnkit finetune --resume RUN reads them)")
        for _ in expected:
            self._unfreeze_next(trainer)
        if expected:
            log.info("resuming after epoch %d with the layer groups %s unfrozen", epoch, expected)

    def _describe(self) -> str:
        return (f"GradualUnfreezing(head_epochs={self.head_epochs}, every={self.every!r}, "
                f"frozen_up_to={self.frozen_up_to!r})")


# ---------------------------------------------------------------------------- whole runs
@dataclass(frozen=True)
class FineTuneSettings:
    """How a fine-tuning run treats the pretrained part (saved as ``RUN/finetune.json``).

    Args:
        freeze: ``"none"`` (fine-tune everything after the head phase), ``"all-but-head"``
            (a frozen backbone: only the new classifier ever trains) or ``"up-to:NAME"``
            (groups up to and including layer group NAME stay frozen).
        head_epochs: epochs training only the new head before unfreezing.
        lr_decay: discriminative rate factor per layer group towards the input.
        unfreeze_every: unfreeze one group every this many epochs (None: all at once).
        strict: refuse weights that do not match the model (the replaced head excepted).
    """

    freeze: str = "none"
    head_epochs: int = 1
    lr_decay: float = 0.5
    unfreeze_every: int | None = None
    strict: bool = True

    def __post_init__(self):
        if not isinstance(self.freeze, str) or not (
                self.freeze in ("none", "all-but-head")
                or (self.freeze.startswith("up-to:") and self.freeze[6:])):
            raise ValueError(f"freeze must be one of {', '.join(FREEZE_CHOICES)}, got "
                             f"{self.freeze!r}")
        if (isinstance(self.head_epochs, bool) or not isinstance(self.head_epochs, int)
                or self.head_epochs < 0):
            raise ValueError(f"head_epochs must be an int >= 0, got {self.head_epochs!r}")
        _check_decay(self.lr_decay)
        if self.unfreeze_every is not None:
            check_positive_int(self.unfreeze_every, "unfreeze_every")

    def callback(self) -> GradualUnfreezing | None:
        """The unfreezing callback these settings ask for (None for a frozen backbone)."""
        if self.freeze == "all-but-head":
            return None
        up_to = self.freeze[len("up-to:"):] if self.freeze.startswith("up-to:") else None
        return GradualUnfreezing(self.head_epochs, every=self.unfreeze_every,
                                 lr_decay=self.lr_decay, frozen_up_to=up_to)


@dataclass
class FineTuneResult:
    """What :func:`finetune` returns: the run (as ``cnnkit.train.train``) and the load report.

    ``load_report`` is None for a resumed run: its weights came from the checkpoint (the
    original report is in the run's ``finetune.json``).
    """

    run: object
    load_report: LoadReport | None


def finetune(source=None, config=None, *, model: str | None = None,
             settings: FineTuneSettings | None = None, callbacks: Iterable[Callback] = (),
             progress: bool | None = None, overwrite: bool = False,
             resume: str | Path | None = None) -> FineTuneResult:
    """Fine-tune pretrained weights on ``config.data`` and write a normal run folder.

    Steps: build the pretrained architecture (from the run folder, or ``model`` for a bare
    weights file) for the new data's size; load the weights (report in the run folder's
    ``finetune.json``, written before training starts); adapt the first conv to the data's
    channels; replace the classifier for the new classes; freeze all but the head; train with
    ``cnnkit.train.train`` and a :class:`GradualUnfreezing` callback following ``settings``.
    ``cnnkit evaluate``/``predict`` and ``cnnkit.load`` work on the result as on any run.

    ``resume=RUN`` continues an interrupted fine-tuning run from its last checkpoint with the
    settings in ``RUN/config.json`` and ``RUN/finetune.json``: the model is rebuilt from
    ``RUN/model.json`` and frozen as at the start, and the unfreezing schedule re-adds the
    optimizer groups it had added by then, so the result equals an uninterrupted run.

    Args:
        source: a run folder, a ``.safetensors``/``.pt``/``.pth`` file, or an ``nn.Module``.
        config: the ``TrainConfig`` (data, epochs, lr = the head's rate, out, ...); its
            ``model`` is replaced by the pretrained architecture's name.
        model: registry name or spec string of the architecture, needed for a weights file.
        settings: freezing and schedule (:class:`FineTuneSettings`; None: the defaults, or on a
            resume the run's own).
        callbacks, progress, overwrite: as ``cnnkit.train.train``.
        resume: a fine-tuning run folder to continue (then no ``source``, ``config``, ``model``).

    Raises:
        ValueError: a weights file without ``model``; settings out of range; ``resume`` with
            ``source``/``config``/``model``, or with settings other than the run's.
        CheckpointError: weights that do not fit (strict), an unreadable source; a ``resume``
            folder that is no fine-tuning run or whose checkpoint does not fit the schedule.

    Example:
        >>> finetune("runs/mnist04", TrainConfig(data="digits59", epochs=6, out="runs/ft"),
        ...          settings=FineTuneSettings(head_epochs=2))   # doctest: +SKIP
        >>> finetune(resume="runs/ft")   # after an interruption   # doctest: +SKIP
    """
    if settings is not None and not isinstance(settings, FineTuneSettings):
        raise TypeError(f"settings must be a FineTuneSettings, got {type(settings).__name__}")
    if resume is not None:
        given = [name for name, value in (("source", source), ("config", config),
                                          ("model", model)) if value is not None]
        if given:
            raise ValueError(f"finetune(resume={str(resume)!r}) takes its source, data and "
                             f"settings from the run folder; leave out {', '.join(given)}")
        return _resume(Path(resume), settings, callbacks, progress)
    if source is None or config is None:
        raise TypeError("finetune needs source (pretrained weights) and config (the new data "
                        "and training settings), or resume=RUN to continue a run")
    settings = FineTuneSettings() if settings is None else settings
    out = Path(config.out) if config.out else default_run_folder()
    found: dict = {}

    def build(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        net, report = pretrained_model(source, model=model, input_shape=input_shape,
                                       strict=settings.strict)
        transfer(net, num_classes, in_channels=input_shape[0])
        freeze(net, all_but_head=True)
        found.update(model=net, report=report)
        if distributed.current().is_main:  # before training: a resume needs the settings
            _write_record(out, source, settings, report)
        return net

    probe_name = model or _architecture_name(source)
    config = config.replace(model=probe_name, out=str(out))
    schedule = settings.callback()
    own: list[Callback] = [] if schedule is None else [schedule]
    result = train(config, callbacks=[*own, *callbacks], progress=progress,
                   overwrite=overwrite, model_builder=build)
    return FineTuneResult(result, found["report"])


def _write_record(out: Path, source, settings: FineTuneSettings, report: LoadReport) -> None:
    """``RUN/finetune.json``: the source, the settings and how the weights loaded."""
    record = {"source": str(source) if not isinstance(source, nn.Module) else
              type(source).__name__, **asdict(settings),
              "load_report": {"matched": len(report.matched), "missing": report.missing,
                              "unexpected": report.unexpected,
                              "shape_mismatch": [list(map(str, m))
                                                 for m in report.shape_mismatch],
                              "head_skipped": report.head}}
    atomic_write_text(out / FINETUNE_FILE, json.dumps(record, indent=2) + "\n")


def _saved_settings(run: Path, given: FineTuneSettings | None) -> FineTuneSettings:
    """The settings in ``run/finetune.json`` (``given`` must equal them, or stand in for them)."""
    path = run / FINETUNE_FILE
    if not path.is_file():
        if given is None:
            raise CheckpointError(f"{str(run)!r} has no {FINETUNE_FILE}, so the fine-tuning "
                                  "settings it was started with are unknown; pass them again "
                                  "from Python: finetune(resume=RUN, "
                                  "settings=FineTuneSettings(...))")
        return given
    record = read_json(path)
    try:
        saved = FineTuneSettings(**{f.name: record[f.name] for f in fields(FineTuneSettings)})
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{str(path)!r} does not hold valid fine-tuning settings "
                              f"({type(exc).__name__}: {exc})") from None
    if given is not None and given != saved:
        raise ValueError(f"settings={given!r} differ from those the run was started with, "
                         f"{saved!r} ({str(path)!r}); leave settings out to resume with the "
                         "saved ones, or start a new run to change them")
    return saved


def _resume(run: Path, settings: FineTuneSettings | None, callbacks: Iterable[Callback],
            progress: bool | None) -> FineTuneResult:
    """Continue the fine-tuning run in ``run`` (see :func:`finetune`)."""
    if not (run / rf.CONFIG_FILE).is_file():
        raise CheckpointError(f"cannot resume {str(run)!r}: it has no {rf.CONFIG_FILE} (give "
                              "the --out folder of an earlier cnnkit finetune)")
    settings = _saved_settings(run, settings)
    if not has_checkpoint(run / rf.CHECKPOINT_DIR):
        # Stopped in its first epoch: start it again from the pretrained weights.
        record = rf.read_json(run / FINETUNE_FILE) if (run / FINETUNE_FILE).is_file() else {}
        source = record.get("source")
        if not source or not Path(source).exists():
            raise CheckpointError(f"{str(run)!r} has no checkpoint yet and its pretrained "
                                  f"source {source!r} is not found; start the run again with "
                                  "cnnkit finetune SOURCE ... --overwrite")
        log.warning("%s has no checkpoint yet: starting the fine-tuning again from %s",
                    run, source)
        config = TrainConfig.from_dict({**rf.read_json(run / rf.CONFIG_FILE), "out": str(run)})
        return finetune(source, config, model=config.model, settings=settings,
                        callbacks=callbacks, progress=progress, overwrite=True)
    architecture = rf.read_json(run / rf.MODEL_FILE).get("architecture")
    if not architecture:
        raise CheckpointError(f"{str(run / rf.MODEL_FILE)!r} has no architecture to rebuild the "
                              "fine-tuned model from; was the run written by cnnkit finetune?")

    def build(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        net = _build_architecture(architecture)  # weights: from the checkpoint
        freeze(net, all_but_head=True)  # as at the start; the schedule unfreezes the rest
        return net

    schedule = settings.callback()
    own: list[Callback] = [] if schedule is None else [schedule]
    result = train(resume=run, callbacks=[*own, *callbacks], progress=progress,
                   model_builder=build)
    return FineTuneResult(result, None)


def _build_architecture(architecture: dict) -> nn.Module:
    """The model a run folder's ``architecture`` dict describes (spec or registry entry)."""
    if architecture.get("type") == "spec":
        return Sequential.from_architecture(architecture)
    return build_architecture(architecture)


def _architecture_name(source) -> str:
    """The registry name or spec of a run folder's / module's architecture, for config.model."""
    if isinstance(source, nn.Module):
        arch = getattr(source, "architecture", None) or {}
    else:
        path = Path(source)
        if not path.is_dir():
            raise ValueError(f"{str(source)!r} is a weights file: say which architecture it "
                             "holds with model=<registry name or spec> (--model on the CLI)")
        arch = read_json(path / MODEL_FILE).get("architecture") or {}
    name = arch.get("name") or arch.get("spec")
    if not name:
        raise ValueError(f"cannot tell the architecture of {source!r}; pass model=<registry name "
                         "or spec>")
    return name
