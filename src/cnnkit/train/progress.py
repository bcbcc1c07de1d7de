"""Progress of one epoch: a live bar on a terminal, a plain line every ~10 s elsewhere.

On a terminal (stderr is a TTY) a tqdm bar shows batch, loss, accuracy, images/s and ETA. When
stderr is not a terminal (CI logs, ``nohup``, notebooks) a bar would be noise, so instead one
line is written to stderr every ``interval`` seconds::

    epoch 3/10  step 120/500  loss 0.4321  acc 0.8810  1234 img/s  ETA 0:00:31

``enabled=False`` shows neither (tests and library users who want silence).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

LINE_INTERVAL_S = 10.0


def format_eta(seconds: float) -> str:
    """``h:mm:ss`` for a number of seconds (``?`` when it is unknown).

    Example:
        >>> format_eta(3725.2)
        '1:02:05'
    """
    if seconds != seconds or seconds == float("inf"):  # NaN or inf: not known yet
        return "?"
    whole = max(0, round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class EpochProgress:
    """Progress of one epoch; ``update`` every step, ``set_metrics`` on the logging steps.

    Args:
        total: batches in the epoch (None if the loader has no length).
        epoch: this epoch (from 1) and ``epochs`` the total, shown as ``epoch 3/10``.
        enabled: False shows nothing; None: a bar when stderr is a terminal, else lines.
        interval: seconds between two progress lines (not a terminal only).
        clock: returns the time in seconds (``time.monotonic``; tests pass their own).
        stream: where the lines go (None: ``sys.stderr``); whether it is a terminal decides
            between bar and lines.

    Example:
        >>> bar = EpochProgress(total=10, epoch=1, epochs=5, enabled=False)
        >>> bar.update(images=32); bar.close()
    """

    def __init__(self, total: int | None, epoch: int, epochs: int, enabled: bool | None = None,
                 *, interval: float = LINE_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic, stream: TextIO | None = None):
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0:
            raise ValueError(f"interval must be a number of seconds >= 0, got {interval!r}")
        terminal = (stream if stream is not None else sys.stderr).isatty()
        self.total, self.epoch, self.epochs = total, epoch, epochs
        self.interval, self.clock, self.stream = float(interval), clock, stream
        self.start = clock()
        self.images = 0
        self.steps = 0
        self._bar = None
        self._lines = enabled is None and not terminal
        self._last_line = self.start
        if enabled or (enabled is None and terminal):
            from tqdm.auto import tqdm  # import cost: tqdm, only for a terminal progress bar

            self._bar = tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="batch",
                             leave=False, dynamic_ncols=True)

    def update(self, images: int) -> None:
        """One more batch of ``images`` images."""
        self.images += images
        self.steps += 1
        if self._bar is not None:
            self._bar.update(1)

    def images_per_second(self) -> float:
        return self.images / max(1e-9, self.clock() - self.start)

    def line_due(self) -> bool:
        """True when a progress line is due (not a terminal, ``interval`` s since the last)."""
        return self._lines and self.clock() - self._last_line >= self.interval

    def set_metrics(self, loss: float, accuracy: float | None, name: str = "acc") -> None:
        """Show the running loss and the task's metric (``name``: acc, mean_iou, miou; None: not
        tracked while training), called on the logging steps and when :meth:`line_due`."""
        if self._bar is not None:
            shown = {} if accuracy is None else {name: f"{accuracy:.3f}"}
            self._bar.set_postfix(loss=f"{loss:.4f}", **shown,
                                  img_s=f"{self.images_per_second():.0f}")
        if self.line_due():
            self._write_line(loss, accuracy, name)

    def _write_line(self, loss: float, accuracy: float | None, name: str) -> None:
        now = self.clock()
        elapsed = max(1e-9, now - self.start)
        if self.total:
            step = f"step {self.steps}/{self.total}"
            eta = format_eta((self.total - self.steps) * elapsed / max(1, self.steps))
        else:
            step, eta = f"step {self.steps}", "?"
        parts = [f"epoch {self.epoch}/{self.epochs}", step, f"loss {loss:.4f}"]
        if accuracy is not None:
            parts.append(f"{name} {accuracy:.4f}")
        parts += [f"{self.images / elapsed:.0f} img/s", f"ETA {eta}"]
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write("  ".join(parts) + "\n")
        stream.flush()
        self._last_line = now

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
