"""The sections of a run report: what a run folder and one evaluation say, as tables, text and PNGs.

:func:`collect_sections` reads the run folder (config, summary, metrics, results), evaluates the
run on one split of its data, and draws the pictures with :mod:`cnnkit.viz`; nothing here writes
HTML (that is :mod:`cnnkit.report.page`). Classifiers get the confusion matrix, per-class
metrics, the most confident mistakes, first-layer filters and the feature maps of one test
image; localise / segment / detect runs get their task's metrics and a picture of true and
predicted boxes or masks, with a note where a classifier's section does not apply.
"""
from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from cnnkit._checks import format_shape_hwc
from cnnkit.data.open import open_data
from cnnkit.inspect.feature_maps import feature_maps
from cnnkit.inspect.filters import conv_layers, filter_grid
from cnnkit.inspect.mistakes import most_confident_mistakes
from cnnkit.inspect.summary import summary
from cnnkit.run.evaluate import evaluate_images, evaluate_task_run, split_of
from cnnkit.run.folder import (CONFIG_FILE, METRICS_FILE, RESULTS_FILE, SUMMARY_FILE, LoadedModel,
                               read_json, read_metrics)
from cnnkit.viz.confusion import plot_confusion_matrix
from cnnkit.viz.curves import plot_training_curves
from cnnkit.viz.grids import plot_feature_maps, plot_filters
from cnnkit.viz.mistakes import plot_mistakes
from cnnkit.viz.tasks import plot_boxes_grid, plot_masks_grid

log = logging.getLogger(__name__)

DPI = 80  # pictures are embedded in the page: small enough to keep a report under a few MB
MAX_MISTAKES = 16


@dataclass(frozen=True)
class Picture:
    """One PNG picture of a section and its alternative text."""

    png: bytes
    alt: str


@dataclass(frozen=True)
class Table:
    """A table of plain values (strings or numbers; the renderer escapes and formats them)."""

    header: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class Section:
    """One part of the report: any of a table, preformatted text, pictures and a note.

    ``key`` is the HTML id (``config``, ``summary``, ...); ``note`` explains an empty or
    skipped section (``"confusion matrices are for classifiers ..."``).
    """

    key: str
    title: str
    table: Table | None = None
    text: str | None = None
    pictures: tuple[Picture, ...] = ()
    note: str | None = None


def figure_png(fig: Figure, *, dpi: int = DPI) -> bytes:
    """The PNG bytes of a matplotlib figure (drawn at ``dpi``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _config_section(run: Path) -> Section:
    config = read_json(run / CONFIG_FILE) if (run / CONFIG_FILE).is_file() else {}
    if not config:
        return Section("config", "Configuration", note=f"{CONFIG_FILE} is missing or empty")
    # values as written in config.json (0.003, not a rounded 0.0030)
    rows = tuple((key, value if isinstance(value, str) else json.dumps(value))
                 for key, value in config.items())
    return Section("config", "Configuration", table=Table(("key", "value"), rows))


def _summary_section(run: Path, loaded: LoadedModel) -> Section:
    path = run / SUMMARY_FILE
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    else:  # a run written without its summary: make the same table again
        text = str(summary(loaded.model, format_shape_hwc(loaded.input_shape)))
    return Section("summary", "Model summary", text=text.rstrip())


def _results_section(run: Path) -> Section:
    results = read_json(run / RESULTS_FILE) if (run / RESULTS_FILE).is_file() else {}
    rows = tuple((key, value) for key, value in results.items()
                 if isinstance(value, (int, float)) and not isinstance(value, bool))
    if not rows:
        return Section("results", "Final metrics", note=f"{RESULTS_FILE} has no metrics")
    return Section("results", "Final metrics (results.json)",
                   table=Table(("metric", "value"), rows))


def _curves_section(run: Path) -> Section:
    records = read_metrics(run)
    if not records:
        return Section("curves", "Training curves", note=f"{METRICS_FILE} has no epochs")
    png = figure_png(plot_training_curves(records))
    return Section("curves", "Training curves",
                   pictures=(Picture(png, f"loss and accuracy over {len(records)} epochs"),))


def _split(data: str, split: str, loaded: LoadedModel, data_dir: str | None):
    """The ``split`` part of ``data`` opened at the run's input size, with the run's classes.

    Raises:
        DataError: no such split, or other class names than the run's.
    """
    c, h, w = loaded.input_shape
    splits = open_data(data, data_dir=data_dir, size=(h, w), channels=c,
                       val_split=loaded.config.get("val_split", 0.0),
                       seed=loaded.config.get("seed", 0))
    return split_of(splits, data, split, loaded)


def _model_input(loaded: LoadedModel, image):
    """A uint8 (C, H, W) image at the run's size -> the normalised float image the model sees."""
    if loaded.normalization is not None:
        return loaded.normalization.apply(image)
    return image.float() / 255.0


def _inside_sections(loaded: LoadedModel, image, caption: str) -> list[Section]:
    """First-layer filters and the feature maps of ``image`` (uint8 (C, H, W))."""
    if not conv_layers(loaded.model):
        note = "the model has no convolution layer"
        return [Section("filters", "First-layer filters", note=note),
                Section("feature-maps", "Feature maps", note=note)]
    grid = filter_grid(loaded.model)
    filters = Section("filters", f"First-layer filters ({grid.layer})", pictures=(
        Picture(figure_png(plot_filters(grid)), f"the kernels of layer {grid.layer}"),))
    maps = feature_maps(loaded.model, _model_input(loaded, image))
    shown = Section("feature-maps", "Feature maps of one test image", text=caption, pictures=(
        Picture(figure_png(plot_feature_maps(maps, max_channels=16)),
                f"feature maps of {len(maps)} layers"),))
    return [filters, shown]


def _classifier_sections(loaded: LoadedModel, data: str, split: str,
                         data_dir: str | None) -> list[Section]:
    part = _split(data, split, loaded, data_dir)
    report = evaluate_images(loaded, part.images, part.labels, split=split)
    names = loaded.class_names
    evaluation = Section("evaluation", f"Evaluation on the {split} split", table=Table(
        ("data", "split", "images", "accuracy", "loss"),
        ((data, split, report.num_images, report.accuracy, report.loss),)))
    confusion = Section("confusion", "Confusion matrix", pictures=(
        Picture(figure_png(plot_confusion_matrix(report.confusion, names)),
                f"confusion matrix of {len(names)} classes"),))
    classes = report.classes
    n = max(1, len(names))
    rows = tuple(zip(names, classes.precision, classes.recall, classes.f1, classes.support))
    rows += (("macro average", sum(classes.precision) / n, sum(classes.recall) / n,
              sum(classes.f1) / n, sum(classes.support)),)
    per_class = Section("per-class", "Per-class metrics", table=Table(
        ("class", "precision", "recall", "f1", "support"), rows))
    probs = loaded.predict_proba(part.images)  # (N, K)
    worst = most_confident_mistakes(probs, part.labels, k=MAX_MISTAKES)
    if len(worst.indices):
        fig = plot_mistakes(part.images[worst.indices], part.labels[worst.indices],
                            worst.predicted, worst.confidence, names)
        mistakes = Section("mistakes", "Most confident mistakes", pictures=(
            Picture(figure_png(fig), f"the {len(worst.indices)} most confident mistakes"),))
    else:
        mistakes = Section("mistakes", "Most confident mistakes",
                           note=f"no mistakes on the {split} split")
    predicted = names[int(probs[0].argmax())]
    caption = (f"image 0 of the {split} split: true class {names[int(part.labels[0])]}, "
               f"predicted {predicted} ({float(probs[0].max()):.0%})")
    return [evaluation, confusion, per_class, mistakes,
            *_inside_sections(loaded, part.images[0], caption)]


def _task_sections(loaded: LoadedModel, data: str, split: str, data_dir: str | None,
                   image_root: str | None) -> list[Section]:
    report = evaluate_task_run(loaded, data, split=split, data_dir=data_dir,
                               image_root=image_root)
    scalars = tuple((key, value) for key, value in report.metrics.items()
                    if isinstance(value, (int, float)) and not isinstance(value, bool))
    evaluation = Section("evaluation", f"Evaluation on the {split} split ({report.task})",
                         text=f"data {data}, {report.num_images} images",
                         table=Table(("metric", "value"), scalars))
    sections = [evaluation]
    per_class = report.metrics.get("per_class_iou") or report.metrics.get("per_class_ap")
    if per_class is not None:
        name = "IoU" if "per_class_iou" in report.metrics else "AP"
        values = per_class.values() if isinstance(per_class, dict) else per_class
        rows = tuple((cls, "absent" if value is None else value)
                     for cls, value in zip(report.class_names, values))
        sections.append(Section("per-class", f"Per-class {name}",
                                table=Table(("class", name), rows)))
    sample = report.sample
    if loaded.task == "segment":
        fig = plot_masks_grid(sample["images"], sample["true"], sample["pred"], report.class_names)
        alt = "true and predicted masks"
    else:
        fig = plot_boxes_grid(sample["images"], sample["true_boxes"], sample["true_labels"],
                              sample["pred_boxes"], sample["pred_labels"], report.class_names,
                              pred_scores=sample["pred_scores"])
        alt = "true (blue) and predicted (orange) boxes"
    sections.append(Section("samples", f"The first {len(sample['images'])} {split} images",
                            pictures=(Picture(figure_png(fig), alt),)))
    skipped = (f"this run does {loaded.task}: a confusion matrix and the most confident "
               "mistakes are for classifiers")
    sections += [Section("confusion", "Confusion matrix", note=skipped),
                 Section("mistakes", "Most confident mistakes", note=skipped)]
    caption = f"image 0 of the {split} split"
    return sections + _inside_sections(loaded, sample["images"][0], caption)


def collect_sections(run: str | Path, loaded: LoadedModel, *, data: str, split: str = "test",
                     data_dir: str | None = None,
                     image_root: str | None = None) -> list[Section]:
    """Every section of the report of ``run`` (already loaded as ``loaded``), in page order.

    Args:
        run: the run folder.
        loaded: ``load_run(run)``.
        data: the dataset to evaluate on (a name, a folder or an annotation file).
        split: ``"train"``, ``"val"`` or ``"test"``.
        data_dir: where named datasets are looked up.
        image_root: COCO data: the folder its file names are relative to.

    Raises:
        DataError: the data has no such split or other classes than the run's.

    Example:
        >>> sections = collect_sections("runs/digits", load_run("runs/digits"),
        ...                             data="digits")  # doctest: +SKIP
        >>> [s.key for s in sections][:3]  # doctest: +SKIP
        ['config', 'summary', 'results']
    """
    run = Path(run)
    sections = [_config_section(run), _summary_section(run, loaded), _results_section(run),
                _curves_section(run)]
    if loaded.task == "classify":
        sections += _classifier_sections(loaded, data, split, data_dir)
    else:
        sections += _task_sections(loaded, data, split, data_dir, image_root)
    log.info("collected %d report sections for %s", len(sections), run)
    return sections
