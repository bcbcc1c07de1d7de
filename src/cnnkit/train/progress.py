"""A live progress bar for one epoch (tqdm): batch, loss, accuracy, images/s and ETA.

It is shown only on a terminal (stderr is a TTY) and when enabled; otherwise every call is a
cheap no-op, so tests and log files stay clean.
"""
from __future__ import annotations

import sys
import time


class EpochProgress:
    """Progress of one epoch; ``update`` every step, ``set_metrics`` on the logging steps.

    Args:
        total: batches in the epoch (None if the loader has no length).
        epoch: this epoch (from 1) and ``epochs`` the total, shown as ``epoch 3/10``.
        enabled: False hides the bar; None shows it only when stderr is a terminal.

    Example:
        >>> bar = EpochProgress(total=10, epoch=1, epochs=5, enabled=False)
        >>> bar.update(images=32); bar.close()
    """

    def __init__(self, total: int | None, epoch: int, epochs: int, enabled: bool | None = None):
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.images = 0
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm  # import cost: tqdm, only for a terminal progress bar

            self._bar = tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="batch",
                             leave=False, dynamic_ncols=True)

    def update(self, images: int) -> None:
        """One more batch of ``images`` images."""
        self.images += images
        if self._bar is not None:
            self._bar.update(1)

    def images_per_second(self) -> float:
        return self.images / max(1e-9, time.perf_counter() - self.start)

    def set_metrics(self, loss: float, accuracy: float | None, name: str = "acc") -> None:
        """Show the running loss and the task's metric (``name``: acc, mean_iou, miou; None: not
        tracked while training), called on the logging steps only."""
        if self._bar is not None:
            shown = {} if accuracy is None else {name: f"{accuracy:.3f}"}
            self._bar.set_postfix(loss=f"{loss:.4f}", **shown,
                                  img_s=f"{self.images_per_second():.0f}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
