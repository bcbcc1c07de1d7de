"""A run report: one self-contained HTML page per run folder (``cnnkit report RUN``).

The page holds the run's config, model summary, final metrics, training curves, the evaluation
on one split (classifiers: confusion matrix, per-class metrics, most confident mistakes;
localise / segment / detect: the task's metrics and true vs predicted boxes or masks), the
first-layer filters and the feature maps of one test image. Pictures are embedded as PNG data
URIs and the CSS is inline, so the file can be mailed or opened offline.

Example:
    >>> from cnnkit.report import write_report
    >>> write_report("runs/digits")  # doctest: +SKIP
    PosixPath('runs/digits/report.html')
"""
from __future__ import annotations

import logging
from pathlib import Path

from cnnkit.report.page import render_page
from cnnkit.report.sections import Picture, Section, Table, collect_sections
from cnnkit.run.atomic import atomic_write_text
from cnnkit.run.folder import load_run

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
SPLITS = ("train", "val", "test")


def write_report(run_dir: str | Path, out: str | Path | None = None, *, split: str = "test",
                 data: str | None = None, data_dir: str | None = None,
                 image_root: str | None = None) -> Path:
    """Evaluate a run on one split and write its report as one HTML page.

    Args:
        run_dir: the run folder (``--out`` of ``cnnkit train``).
        out: where to write the page (default ``RUN/report.html``); must end in ``.html``.
        split: the split to evaluate and take the mistakes and the feature-map image from.
        data: the dataset (default: the run's own ``data`` from its config).
        data_dir: where named datasets are looked up (default: the run's own).
        image_root: COCO data: the folder its file names are relative to (default: the run's,
            when ``data`` is not given).

    Returns:
        The path of the written page.

    Raises:
        CheckpointError: ``run_dir`` is not a run folder.
        ValueError: a bad ``split`` or ``out``, or no dataset known (give ``data``).
        DataError: the data has no such split or other classes than the run's.

    Example:
        >>> write_report("runs/digits", "digits.html", split="val")  # doctest: +SKIP
        PosixPath('digits.html')
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    run = Path(run_dir)
    target = Path(out) if out is not None else run / REPORT_FILE
    if target.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"out must end in .html, got {str(target)!r}")
    loaded = load_run(run)
    dataset = data or loaded.config.get("data")
    if not dataset:
        raise ValueError(f"{str(run)!r} does not record its dataset; give data= (--data)")
    if image_root is None and data is None:
        image_root = loaded.config.get("image_root")
    sections = collect_sections(run, loaded, data=dataset, split=split,
                                data_dir=data_dir or loaded.config.get("data_dir"),
                                image_root=image_root)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, render_page(f"Run report: {run.resolve().name}", sections))
    log.info("wrote %s", target)
    return target


__all__ = ["REPORT_FILE", "Picture", "Section", "Table", "collect_sections", "render_page",
           "write_report"]
