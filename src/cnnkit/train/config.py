"""TrainConfig: every knob of a training run in one frozen dataclass, with JSON/YAML round trips.

The defaults are the README's first job: the built-in 8×8 ``digits`` set, a small CNN written in
the spec notation, Adam, a few epochs — above 90% test accuracy in seconds on a laptop CPU.
Unknown keys are errors that list the valid keys and suggest the closest one.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnkit._checks import check_positive_int, check_probability
from cnnkit.run.atomic import atomic_write_text

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adadelta")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
LOSSES = ("cross_entropy", "squared_error", "mse", "bce")
# Keras' and the tutorials' loss names -> one of LOSSES (the same names in Python and the CLI).
# ``mse`` means what it means in Keras: the mean over the classes of (t - y)^2, which is
# 2/K times the tutorials' squared error ½Σ(t - y)².
LOSS_ALIASES = {
    "cross_entropy": "cross_entropy", "crossentropy": "cross_entropy", "ce": "cross_entropy",
    "categorical_crossentropy": "cross_entropy",
    "sparse_categorical_crossentropy": "cross_entropy",
    "squared_error": "squared_error",
    "mse": "mse", "mean_squared_error": "mse",
    "bce": "bce", "binary_crossentropy": "bce", "binary_cross_entropy": "bce",
}
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
TASKS = ("auto", "classify", "localize", "segment", "detect")
HEADS = ("auto", "localization", "fcn", "unet", "centernet", "fcos")
STEMS = ("auto", "imagenet", "small")
ROUNDINGS = ("warn", "floor", "strict")

# The generic default: mnist-fast's convs (cnnkit.train.recipes.MNIST_FAST_MODEL, chosen there
# by measurement) without its hidden fc(64): two "same" convs each pooled first then BN + ReLU,
# fc to one output per class; 8x8 digits -> 4 -> 2, 28x28 MNIST -> 14 -> 7. On the built-in
# digits with the default settings: test accuracy 0.9916 for seed 0 (the previous 3x3 16/32 +
# fc(64) default: 0.9833) at a third of its multiply-adds per image; over seeds 0-4 98.38 ±
# 0.36 %, and 98.61 ± 0.28 % with mnist-fast's hidden fc(64): within the noise, so left out.
DEFAULT_MODEL = ("conv(16,5,padding=same) maxpool(2) bn relu "
                 "conv(32,3,padding=same) maxpool(2) bn relu fc(10)")


def _check_choice(value, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        hint = difflib.get_close_matches(str(value), choices, n=1)
        fix = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}{fix}")
    return value


def _check_nonnegative(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class TrainConfig:
    """The resolved settings of one training run (saved as ``RUN/config.json``).

    Args:
        data: dataset: ``digits``, ``mnist``, ``fashion-mnist``, ``cifar10``, a folder of class
            sub-folders, IDX/CIFAR files, ``.npz``, ``.csv`` (``cnnkit.data.open_data``).
        task: ``classify``, ``localize`` (a class and one box per image), ``segment`` (a class
            per pixel) or ``detect`` (many boxes); ``auto``: read from the data (a labels.csv
            with box columns, a masks/ folder, COCO/VOC annotations, the scene names).
        head: the task model on the backbone ``model``: ``localization`` (localize), ``fcn`` or
            ``unet`` (segment), ``centernet`` or ``fcos`` (detect: one centre heatmap, or FCOS's
            per-level boxes on a feature pyramid); ``auto``: the task's default (unet for
            segment). Not used by classify.
        image_root: COCO data: the folder the JSON's file names are relative to (None: the
            JSON's own folder).
        data_dir: where named datasets are looked up / downloaded (None: the data package default).
        download: fetch a named dataset (mnist, cifar10, ...) when it is not in the data dir.
        allow_label_gaps: accept integer labels that skip classes (e.g. 0, 1, 2, 200) as a
            max + 1 class model; nothing is remapped. Named datasets always refuse labels
            outside their classes.
        stream: decode an image folder from disk in worker processes every epoch instead of
            once into memory (None: stream when the decoded training set would exceed 2 GiB).
        model: for localize/segment/detect the backbone, whose classifier is not used (the
            default spec stands for the task's default backbone). Otherwise a registry name
            (``lenet5``, ``resnet18``; ``cnnkit models`` lists them) or an
            architecture string (``"conv(16,3) relu maxpool(2) fc(10)"``).
        input_size: resize images to ``input_size`` × ``input_size`` (None: keep their size).
        stem: a ResNet's first layers: ``imagenet`` (7×7/2 conv + max pool, the layout of
            ImageNet weights), ``small`` (3×3/1 conv, for inputs <= 64 px) or ``auto`` (by the
            input size).
        rounding: an architecture string's layers when O = (W − K + 2P)/S + 1 is not an
            integer: ``warn`` rounds down with a RoundingWarning per layer, ``floor`` rounds
            down silently, ``strict`` refuses with the fixes.
        epochs: full passes over the training set.
        batch_size: images per optimizer step, over all processes together (the global
            batch: each of N processes loads batch_size / N).
        lr: peak learning rate (the schedule multiplies it by a factor in [0, 1]).
        optimizer: one of ``sgd, adam, adamw, rmsprop, adadelta``.
        momentum: SGD/RMSprop momentum.
        nesterov: Nesterov momentum for SGD (needs ``momentum > 0``).
        weight_decay: L2 penalty (decoupled for AdamW).
        schedule: ``constant``, ``step`` (×0.1 at 50% and 75% of the epochs), ``cosine`` or
            ``onecycle``.
        warmup_epochs: linear warm-up from 0 over this many epochs (may be fractional); not
            used by ``onecycle``, which ramps up over its first 30 % of steps (a warning says so).
        loss: ``cross_entropy``, ``squared_error`` (½Σ(t − softmax)²), ``mse`` (Keras' mean
            over the classes of (t − softmax)²) or ``bce``; Keras' names
            (``categorical_crossentropy``, ``mean_squared_error``, ...) are accepted and stored
            as these.
        label_smoothing: cross-entropy label smoothing ε in [0, 1).
        augment: augmentation spec for ``cnnkit.augment.parse_augment`` (``""``: none).
        val_split: fraction of the training set held out for validation.
        seed: one seed for weights, shuffling and augmentation: same seed → same run on CPU.
        deterministic: ask PyTorch for deterministic kernels
            (``torch.use_deterministic_algorithms``);
            CPU runs are repeatable without it, GPU runs need it (slower).
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
        precision: ``fp32``, ``bf16`` or ``fp16`` autocast (fp16 only on CUDA, with a grad scaler);
            ``auto``: bf16 where the device computes it natively (CUDA with bf16, a CPU with
            AVX512-BF16 or AMX), else fp32 (see :func:`cnnkit.train.device.resolve_precision`).
            The default, ``auto``, was chosen by measurement: the tutorial CNN's MNIST epoch
            takes 0.61× the fp32 time in bf16 (0.51× with channels-last) at the same test
            accuracy (bench/RESULTS.md). Pass ``fp32`` for bit-exact fp32 arithmetic.
        channels_last: store conv weights and activations NHWC (None: on a CPU, and on a GPU
            exactly when autocast runs in bf16/fp16: where it was measured faster, see
            :func:`cnnkit.train.device.resolve_channels_last`). ``False`` keeps PyTorch's
            NCHW (fp32 sums then run in PyTorch's default order).
        compile: wrap the model with ``torch.compile``.
        fused_optimizer: run Adam/AdamW/SGD built from ``optimizer`` with their fused kernel
            (same update, one pass over memory: faster on CPU and GPU).
        tune_allocator: keep freed tensor memory in the process (glibc ``mallopt``) instead of
            returning it to the OS and page-faulting it back every step; process-wide, Linux
            only (see :mod:`cnnkit.train.allocator`: a loop that page-faults ran 2.3× faster
            with it; cnnkit's own loops measured the same either way).
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        ema: decay of an exponential moving average of the weights, e.g. 0.999 (None: off).
        tta: evaluate with test-time augmentation (average of the image and its horizontal flip).
        early_stopping: stop after this many epochs without a better validation loss (None: off).
        checkpoint_every: write ``checkpoint/last.*`` every this many epochs (the last epoch
            always writes one).
        out: the run folder (None: ``runs/<data>-<model>`` chosen by the CLI).
        accumulate_steps: split each step's batch into this many micro-batches, adding up
            their gradients before one optimizer step (less memory, same result); with
            several processes the non-final micro-batches skip the gradient all-reduce.
        sync_bn: in a multi-process CUDA run, BatchNorm statistics over the global batch
            (``torch.nn.SyncBatchNorm``); ignored in one process, skipped with a warning on CPU.
        tensorboard: write TensorBoard event files to ``RUN/tensorboard/`` (loss, metrics and
            learning rate per step and epoch, the graph, a few mistaken validation images);
            None: exactly when the ``tensorboard`` package is installed (``pip install
            cnnkit[tensorboard]``). View them with ``tensorboard --logdir RUN/tensorboard``.

    Example:
        >>> cfg = TrainConfig(epochs=3, lr=1e-3)
        >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    data: str = "digits"
    task: str = "auto"
    head: str = "auto"
    image_root: str | None = None
    data_dir: str | None = None
    download: bool = True
    allow_label_gaps: bool = False
    stream: bool | None = None
    model: str = DEFAULT_MODEL
    input_size: int | None = None
    stem: str = "auto"
    rounding: str = "warn"
    epochs: int = 8
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    loss: str = "cross_entropy"
    label_smoothing: float = 0.0
    augment: str = ""
    val_split: float = 0.1
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    fused_optimizer: bool = True
    tune_allocator: bool = True
    grad_clip: float | None = None
    ema: float | None = None
    tta: bool = False
    early_stopping: int | None = None
    checkpoint_every: int = 1
    out: str | None = None
    accumulate_steps: int = 1
    sync_bn: bool = False
    tensorboard: bool | None = None

    def __post_init__(self):
        for name in ("data", "model", "augment"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a string, got {getattr(self, name)!r}")
        if not self.data.strip():
            raise ValueError("data must name a dataset (e.g. 'digits' or 'mnist'), got ''")
        if not self.model.strip():
            raise ValueError("model must be a registry name or a spec string, got ''")
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.checkpoint_every, "checkpoint_every")
        check_positive_int(self.accumulate_steps, "accumulate_steps")
        if self.input_size is not None:
            check_positive_int(self.input_size, "input_size")
        if self.early_stopping is not None:
            check_positive_int(self.early_stopping, "early_stopping")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if _check_nonnegative(self.lr, "lr") == 0.0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}; try 1e-3 for Adam or 0.1 for SGD")
        _check_nonnegative(self.momentum, "momentum")
        _check_nonnegative(self.weight_decay, "weight_decay")
        _check_nonnegative(self.warmup_epochs, "warmup_epochs")
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs must be <= epochs ({self.epochs}), "
                             f"got {self.warmup_epochs!r}")
        check_probability(self.label_smoothing, "label_smoothing")
        check_probability(self.val_split, "val_split")
        if self.grad_clip is not None and _check_nonnegative(self.grad_clip, "grad_clip") == 0.0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")
        if self.ema is not None:
            check_probability(self.ema, "ema")
        _check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        if self.schedule == "one-cycle":  # the prose name (README, docs) means the same
            object.__setattr__(self, "schedule", "onecycle")
        _check_choice(self.schedule, SCHEDULES, "schedule")
        if isinstance(self.loss, str):  # Keras' and the tutorials' names mean the same
            key = self.loss.strip().lower().replace("-", "_")
            object.__setattr__(self, "loss", LOSS_ALIASES.get(key, self.loss))
        _check_choice(self.loss, LOSSES, "loss")
        _check_choice(self.device, DEVICES, "device")
        _check_choice(self.precision, PRECISIONS, "precision")
        _check_choice(self.task, TASKS, "task")
        _check_choice(self.head, HEADS, "head")
        _check_choice(self.stem, STEMS, "stem")
        _check_choice(self.rounding, ROUNDINGS, "rounding")
        if self.tensorboard is not None and not isinstance(self.tensorboard, bool):
            raise TypeError(f"tensorboard must be True, False or None (on when the tensorboard "
                            f"package is installed), got {self.tensorboard!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0; "
                             "set momentum (e.g. 0.9) or turn nesterov off")

    # ------------------------------------------------------------------ round trips
    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain JSON-able dict (every field, defaults included)."""
        return dataclasses.asdict(self)

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        """Each field's description from this class's docstring (the CLI's ``--help`` text)."""
        docs: dict[str, str] = {}
        args = cls.__doc__.split("Args:", 1)[1]
        name = None
        for line in args.splitlines():
            match = re.match(r"^ {8}(\w+): (.*)$", line)
            if match and match.group(1) in cls.field_names():
                name = match.group(1)
                docs[name] = match.group(2).strip()
            elif name and line.startswith(" " * 12) and line.strip():
                docs[name] += " " + line.strip()
            elif not line.strip() or not line.startswith(" " * 8):
                name = None
        return {k: v.replace("``", "") for k, v in docs.items()}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build a config from a dict; unknown keys raise ValueError with the closest valid key.

        Raises:
            TypeError: ``values`` is not a dict.
            ValueError: an unknown key, or a value out of range.
        """
        if not isinstance(values, dict):
            raise TypeError(f"a training config must be a mapping of settings, got {values!r}")
        valid = cls.field_names()
        unknown = [k for k in values if k not in valid]
        if unknown:
            key = unknown[0]
            hint = difflib.get_close_matches(str(key), valid, n=1)
            fix = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(f"unknown training setting {key!r}{fix} "
                             f"(valid settings: {', '.join(valid)})")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a config from a ``.json``, ``.yaml`` or ``.yml`` file (yaml is parsed safely).

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: another extension, a parse error, or an invalid setting.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        text = path.read_text(encoding="utf-8")
        suffix = path.suffix.lower()
        if suffix == ".json":
            try:
                values = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"config file {str(path)!r} is not valid JSON: {exc}") from None
        elif suffix in (".yaml", ".yml"):
            import yaml  # import cost: pyyaml, only for .yaml config files

            try:
                values = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
            values = {} if values is None else values
        else:
            raise ValueError(f"config file {str(path)!r} must end in .json, .yaml or .yml")
        return cls.from_dict(values)

    def to_file(self, path: str | Path) -> None:
        """Write the config as JSON (``.json``) or YAML (``.yaml``/``.yml``), atomically."""
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml  # import cost: pyyaml, only for .yaml config files

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        atomic_write_text(path, text)

    def replace(self, **changes) -> TrainConfig:
        """Return a copy with some settings changed (validated like the original)."""
        return self.from_dict({**self.to_dict(), **changes})
