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

Limitation: a run whose optimizer gained groups cannot be resumed with ``train(resume=...)``.

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
from dataclasses import asdict, dataclass
from pathlib import Path

from torch import nn

from cnnkit._checks import check_positive_int
from cnnkit.errors import TrainingError
from cnnkit.train.callbacks import Callback
from cnnkit.transfer_learning.freeze import freeze, group_index, unfreeze
from cnnkit.transfer_learning.groups import LayerGroup, layer_groups
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

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        while self.pending and len(self.unfrozen) < self._due(epoch):
            group, lr = self.pending.pop(0)
            unfreeze(trainer.model, list(group.modules))
            add_param_group(trainer, group.parameters(trainer.model), lr, group.name)
            self.unfrozen.append(group.name)
            log.info("epoch %d: unfroze layer group %r at lr %.3g", epoch, group.name, lr)


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
    """What :func:`finetune` returns: the run (as ``cnnkit.train.train``) and the load report."""

    run: object
    load_report: LoadReport


def finetune(source, config, *, model: str | None = None,
             settings: FineTuneSettings = FineTuneSettings(), callbacks: Iterable[Callback] = (),
             progress: bool | None = None, overwrite: bool = False) -> FineTuneResult:
    """Fine-tune pretrained weights on ``config.data`` and write a normal run folder.

    Steps: build the pretrained architecture (from the run folder, or ``model`` for a bare
    weights file) for the new data's size; load the weights (report in the run folder's
    ``finetune.json``); adapt the first conv to the data's channels; replace the classifier for
    the new classes; freeze all but the head; train with ``cnnkit.train.train`` and a
    :class:`GradualUnfreezing` callback following ``settings``. ``cnnkit evaluate``/``predict``
    and ``cnnkit.load`` work on the result as on any run.

    Args:
        source: a run folder, a ``.safetensors``/``.pt``/``.pth`` file, or an ``nn.Module``.
        config: the ``TrainConfig`` (data, epochs, lr = the head's rate, out, ...); its
            ``model`` is replaced by the pretrained architecture's name.
        model: registry name or spec string of the architecture, needed for a weights file.
        settings: freezing and schedule (:class:`FineTuneSettings`).
        callbacks, progress, overwrite: as ``cnnkit.train.train``.

    Raises:
        ValueError: a weights file without ``model``; settings out of range.
        CheckpointError: weights that do not fit (strict), an unreadable source.

    Example:
        >>> finetune("runs/mnist04", TrainConfig(data="digits59", epochs=6, out="runs/ft"),
        ...          settings=FineTuneSettings(head_epochs=2))   # doctest: +SKIP
    """
    from cnnkit.train.pipeline import train
    from cnnkit.transfer_learning.transfer import pretrained_model, transfer

    if not isinstance(settings, FineTuneSettings):
        raise TypeError(f"settings must be a FineTuneSettings, got {type(settings).__name__}")
    found: dict = {}

    def build(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        net, report = pretrained_model(source, model=model, input_shape=input_shape,
                                       strict=settings.strict)
        transfer(net, num_classes, in_channels=input_shape[0])
        freeze(net, all_but_head=True)
        found.update(model=net, report=report)
        return net

    probe_name = model or _architecture_name(source)
    config = config.replace(model=probe_name)
    schedule = settings.callback()
    own: list[Callback] = [] if schedule is None else [schedule]
    result = train(config, callbacks=[*own, *callbacks], progress=progress,
                   overwrite=overwrite, model_builder=build)
    record = {"source": str(source) if not isinstance(source, nn.Module) else
              type(source).__name__, **asdict(settings),
              "load_report": {"matched": len(found["report"].matched),
                              "missing": found["report"].missing,
                              "unexpected": found["report"].unexpected,
                              "shape_mismatch": [list(map(str, m))
                                                 for m in found["report"].shape_mismatch],
                              "head_skipped": found["report"].head}}
    from cnnkit.train.atomic import atomic_write_text

    atomic_write_text(Path(result.out) / FINETUNE_FILE, json.dumps(record, indent=2) + "\n")
    return FineTuneResult(result, found["report"])


def _architecture_name(source) -> str:
    """The registry name or spec of a run folder's / module's architecture, for config.model."""
    if isinstance(source, nn.Module):
        arch = getattr(source, "architecture", None) or {}
    else:
        from cnnkit.train.run_folder import MODEL_FILE, read_json

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
