"""Keras' ``compile`` / ``fit`` / ``evaluate`` / ``predict`` for any ``nn.Module`` (a mixin).

It lives with :mod:`cnnkit.keras` (which may use :mod:`cnnkit.train`) so that the models
themselves never import the training code: ``cnnkit.Sequential`` (=
``cnnkit.keras.models.Sequential``) inherits it; any other module gets it by subclassing,
``class Net(KerasModelMixin, ZooModel)`` (mixin first), or trains with
:class:`cnnkit.train.Trainer` / ``TrainConfig`` directly.

A Keras MNIST tutorial runs unchanged::

    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x_train, y_train_onehot, batch_size=128, epochs=1, validation_split=0.1)
    score = model.evaluate(x_test, y_test_onehot, verbose=0)   # [loss, accuracy]

Inputs may be NumPy arrays or tensors laid out N×H×W, N×H×W×C (Keras) or N×C×H×W (PyTorch):
the layout is matched against the model's ``input_shape`` (C, H, W) when it has one. uint8
images are scaled to 0–1; float images are used as given. Labels are class indices or one-hot.
A model that ends in a softmax (Keras' ``Dense(10, activation='softmax')``) is detected: the loss
uses ``log`` of its output, and ``predict`` does not apply a second softmax.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnkit.run.outputs import predict_proba
from cnnkit.train.batches import TensorBatches
from cnnkit.train.callbacks import Callback
from cnnkit.train.config import TrainConfig
from cnnkit.train.device import use_fused_optimizer
from cnnkit.train.losses import get_loss
from cnnkit.train.optimizers import build_optimizer
from cnnkit.train.trainer import History, Trainer

log = logging.getLogger(__name__)

_ACCURACY_NAMES = ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy")


@dataclass
class _Compiled:
    optimizer: Any
    loss: str | Callable
    metrics: tuple[str, ...]
    built_optimizer: torch.optim.Optimizer | None = None


def _to_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (np.ndarray, list, tuple)):
        return torch.as_tensor(np.asarray(value))
    raise TypeError(f"{name} must be a NumPy array or a torch.Tensor, got {type(value).__name__}")


def _to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in 0-1 (x / 255); other dtypes -> float32 as they are."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _is_array(value) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray, list))


class KerasModelMixin:
    """Adds Keras' training API to an ``nn.Module`` subclass (put the mixin first in the bases).

    ``compile`` shadows ``nn.Module.compile`` (in-place ``torch.compile``); use
    ``torch.compile(model)`` or ``TrainConfig(compile=True)`` for that.

    Example:
        >>> class Net(KerasModelMixin, nn.Sequential): pass
        >>> net = Net(nn.Flatten(), nn.Linear(64, 10))
        >>> net.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
        ...             metrics=["accuracy"])
        >>> history = net.fit(x, y, epochs=2)  # doctest: +SKIP
    """

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer: str | torch.optim.Optimizer | Callable = "rmsprop",
                loss: str | Callable | None = None, metrics: Sequence[str] | None = None,
                **kwargs) -> None:
        """Choose the optimizer, the loss and the metrics (Keras names).

        Args:
            optimizer: ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"adadelta"`` with Keras 3's
                defaults (learning rates, epsilon 1e-7, RMSprop's rho 0.9: see
                ``cnnkit.train.optimizers.KERAS_DEFAULTS``), a ``torch.optim.Optimizer`` already built on this
                model's parameters, or a factory ``params -> Optimizer``.
            loss: ``"categorical_crossentropy"`` (one-hot labels),
                ``"sparse_categorical_crossentropy"`` (integer labels), ``"mse"``/
                ``"squared_error"``, ``"binary_crossentropy"``, or a callable.
            metrics: ``["accuracy"]`` or None.

        Raises:
            ValueError: no loss, an unknown loss/metric name, or Keras options we do not have.
        """
        if kwargs:
            raise ValueError(f"compile() got unsupported options {sorted(kwargs)!r}; cnnkit "
                             "supports optimizer, loss and metrics")
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='sparse_categorical_crossentropy'"
                             " for integer labels or 'categorical_crossentropy' for one-hot")
        get_loss(loss)  # validate the name now, not at fit time
        names = tuple(metrics or ())
        for metric in names:
            if metric not in _ACCURACY_NAMES:
                raise ValueError(f"unknown metric {metric!r}; cnnkit's compile() supports "
                                 f"{', '.join(_ACCURACY_NAMES)}")
        if isinstance(optimizer, str):
            build_optimizer(optimizer, [nn.Parameter(torch.zeros(1))])  # validate the name
        elif not (isinstance(optimizer, torch.optim.Optimizer) or callable(optimizer)):
            raise TypeError(f"optimizer must be a name like 'adam', a torch.optim.Optimizer or "
                            f"a factory params -> Optimizer, got {optimizer!r}")
        self._keras = _Compiled(optimizer, loss, names)

    def _compiled(self) -> _Compiled:
        compiled = getattr(self, "_keras", None)
        if compiled is None:
            raise ValueError("call model.compile(optimizer=..., loss=..., metrics=[...]) before "
                             "fit/evaluate")
        return compiled

    # ------------------------------------------------------------------ data
    def _device(self) -> torch.device:
        param = next(self.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def _in_layout(self, x) -> torch.Tensor:
        """Any tutorial layout -> (N, C, H, W) (or (N, F) for flat inputs), dtype kept."""
        x = _to_tensor(x, "x")
        expected = getattr(self, "input_shape", None)
        if x.ndim == 3:
            x = x.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
        if x.ndim != 4:
            return x
        if expected is not None and len(expected) == 3:
            c, h, w = expected
            if tuple(x.shape[1:]) == (c, h, w):
                return x
            if tuple(x.shape[1:]) == (h, w, c):
                return x.permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> (N, C, H, W)
            raise ValueError(f"x has shape {tuple(x.shape)!r} but the model expects images "
                             f"{h}x{w}x{c} (N, {c}, {h}, {w} or N, {h}, {w}, {c}); resize or "
                             "reshape the data")
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            return x.permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> (N, C, H, W)
        return x

    @staticmethod
    def _as_targets(y) -> torch.Tensor:
        y = _to_tensor(y, "y")
        if y.ndim == 2 and y.shape[1] == 1 and not y.is_floating_point():
            y = y.squeeze(1)  # (N, 1) -> (N,)
        if y.ndim == 1:
            if y.is_floating_point():
                if not torch.equal(y, y.round()):
                    raise ValueError("y must hold integer class labels or one-hot rows, got "
                                     "non-integer values in a 1-D array")
            return y.long()
        if y.ndim == 2:
            return y.float()  # one-hot or soft labels (N, K)
        raise ValueError(f"y must be labels (N,) or one-hot (N, K), got shape {tuple(y.shape)!r}")

    def _batches(self, x, y, batch_size: int, shuffle: bool = False, seed: int = 0):
        if y is None and not _is_array(x):
            if not isinstance(x, Iterable):
                raise TypeError(f"x must be an array, a tensor or an iterable of (x, y) batches, "
                                f"got {type(x).__name__}")
            return x
        if y is None:
            raise ValueError("y is missing: give labels (N,) or one-hot (N, K) with x")
        # uint8 images stay uint8 in memory and become 0-1 floats a batch at a time (the same
        # values; the tutorial epoch's 60000 MNIST images: 188 MB of float32 and 0.1 s not spent
        # up front, bench/RESULTS.md)
        return TensorBatches(self._in_layout(x), self._as_targets(y), batch_size=batch_size,
                             shuffle=shuffle, seed=seed, transform=_to_float)

    # ------------------------------------------------------------------ training
    def _build(self, sample: torch.Tensor) -> None:
        """Run one sample through a lazily built model so that its parameters exist."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            self(sample[:1].to(self._device()))
        self.train(was_training)

    def _trainer(self, *, batch_size: int = 32, epochs: int = 1, verbose: int = 1,
                 callbacks: Sequence[Callback] = (), seed: int = 0,
                 precision: str = "fp32", tune_allocator: bool = True) -> Trainer:
        compiled = self._compiled()
        if compiled.built_optimizer is None:
            opt = compiled.optimizer
            if isinstance(opt, str):
                opt = build_optimizer(opt, self.parameters(), keras_defaults=True)
                use_fused_optimizer(opt)  # same update, one pass over memory
            elif not isinstance(opt, torch.optim.Optimizer):
                opt = opt(self.parameters())
            compiled.built_optimizer = opt
        config = TrainConfig(epochs=epochs, batch_size=batch_size, schedule="constant",
                             device=str(self._device()), val_split=0.0, seed=seed,
                             precision=precision, tune_allocator=tune_allocator)
        return Trainer(self, config, optimizer=compiled.built_optimizer, loss=compiled.loss,
                       callbacks=callbacks, progress=None if verbose else False)

    def fit(self, x=None, y=None, batch_size: int | None = None, epochs: int = 1,
            verbose: int | str = 1, callbacks: Sequence[Callback] | None = None,
            validation_split: float = 0.0, validation_data=None, shuffle: bool = True,
            seed: int = 0, precision: str = "auto", tune_allocator: bool = True) -> History:
        """Train like Keras; returns a ``History`` whose ``.history`` has ``loss``, ``accuracy``,
        ``val_loss``, ``val_accuracy`` lists.

        Args:
            x: images (N×H×W, N×H×W×C or N×C×H×W; uint8 or float) or an iterable of (x, y)
                batches (then ``y`` is None).
            y: integer labels (N,) or one-hot (N, K).
            batch_size: images per step (default 32).
            epochs: passes over the data.
            verbose: 0 hides the progress bar.
            callbacks: :class:`~cnnkit.train.callbacks.Callback` objects.
            validation_split: hold out the *last* fraction of x/y (as Keras does, before shuffling).
            validation_data: ``(x_val, y_val)`` or an iterable of batches.
            shuffle: reshuffle each epoch (order from ``seed`` and the epoch).
            seed: seed of the shuffling.
            precision: how the forward pass computes (not in Keras): ``"auto"`` (default) is
                bf16 autocast where the device has native bf16 (a CPU with AVX512-BF16/AMX, a
                recent GPU), which trains the tutorial CNN about 1.5–2× faster at the same
                accuracy (bench/tutorial_mnist.py); ``"fp32"`` keeps every op in float32.
            tune_allocator: keep freed tensor memory in the process (not in Keras; see
                ``TrainConfig.tune_allocator``); False leaves glibc's malloc alone.

        Raises:
            ValueError: not compiled, bad shapes, or validation_split outside [0, 1).
        """
        batch_size = batch_size or 32
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        val = None
        if validation_split and _is_array(x):
            x, y = _to_tensor(x, "x"), _to_tensor(y, "y")
            n_val = int(len(x) * validation_split)
            if n_val == 0 or n_val == len(x):
                raise ValueError(f"validation_split={validation_split!r} of {len(x)} samples "
                                 "leaves an empty part; use a fraction that keeps both non-empty")
            x, y, x_val, y_val = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
            val = self._batches(x_val, y_val, batch_size)
        elif validation_split:
            raise ValueError("validation_split needs array inputs; give validation_data for a "
                             "loader")
        if validation_data is not None:
            if isinstance(validation_data, tuple) and len(validation_data) == 2:
                val = self._batches(*validation_data, batch_size)
            else:
                val = self._batches(validation_data, None, batch_size)
        train = self._batches(x, y, batch_size, shuffle=shuffle, seed=seed)
        first = next(iter(train))[0]
        self._build(first)
        trainer = self._trainer(batch_size=batch_size, epochs=epochs, verbose=int(bool(verbose)),
                                callbacks=list(callbacks or ()), seed=seed,
                                precision=precision, tune_allocator=tune_allocator)
        history = trainer.fit(train, val, epochs=epochs)
        for epoch, loss in zip(history.epoch, history.history["loss"]):
            log.info("epoch %d/%d: loss %.4f", epoch, epochs, loss)
        self.history = history
        return history

    def evaluate(self, x=None, y=None, batch_size: int | None = None, verbose: int = 1,
                 return_dict: bool = False):
        """Loss and metrics on ``(x, y)``: ``[loss, accuracy]`` (a scalar loss without metrics).

        Raises:
            ValueError: not compiled or bad shapes.
        """
        compiled = self._compiled()
        batches = self._batches(x, y, batch_size or 32)
        self._build(next(iter(batches))[0])
        trainer = self._trainer(batch_size=batch_size or 32, verbose=verbose)
        logs = trainer.evaluate(batches)
        result = {"loss": logs["loss"]}
        result.update({m: logs["accuracy"] for m in compiled.metrics})
        if return_dict:
            return result
        values = list(result.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
        """Class probabilities (N, K) as a float32 NumPy array (softmax applied once).

        Works before ``compile``: prediction needs no loss or optimizer.
        """
        images = self._in_layout(x)  # uint8 stays uint8: 0-1 floats a batch at a time
        self._build(_to_float(images[:1]))
        batches = TensorBatches(images, None, batch_size=batch_size or 32, transform=_to_float)
        return predict_proba(self, batches).numpy()
