"""``cnnkit evaluate RUN --data DATA``: accuracy, loss, per-class table and confusion matrix."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_data_options(p: argparse.ArgumentParser) -> None:
    """``--data``, ``--data-dir``, ``--image-root``, ``--split``: the data a run is judged on
    (``cnnkit evaluate``, ``cnnkit report``)."""
    p.add_argument("--data", help="dataset to evaluate on (default: the run's own --data)")
    p.add_argument("--data-dir", help="where named datasets are looked up")
    p.add_argument("--image-root", help="COCO data: the folder its file names are relative to "
                                        "(default: the run's, else the JSON's folder)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="which split to evaluate (default: test)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", allow_abbrev=False, help="evaluate a trained run on a dataset",
        description="Classifiers: accuracy, loss, per-class precision/recall/F1 and the "
                    "confusion matrix (as text, and as a PNG next to the run). Localisation: "
                    "accuracy, mean_iou, iou50; segmentation: miou, pixel_accuracy, "
                    "per_class_iou (and an IoU bar chart); detection: COCO map, map50, map75, "
                    "per_class_ap, recall (pycocotools) and voc_map50.")
    p.add_argument("run", metavar="RUN", help="run folder written by cnnkit train")
    add_data_options(p)
    p.add_argument("--batch-size", type=int, default=256, help="images per batch (default 256)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average with horizontally flipped images (default: as the run was "
                        "trained, so the accuracy matches the one cnnkit train printed)")
    p.add_argument("--png", metavar="FILE",
                   help="confusion-matrix picture (default: RUN/confusion_<split>.png; "
                        "segmentation: the per-class IoU chart, RUN/iou_<split>.png)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.run.evaluate import evaluate_run
    from cnnkit.run.folder import load_run

    loaded = load_run(args.run)
    data = args.data or loaded.config.get("data")
    if not data:
        raise ValueError(f"{args.run} does not record its dataset; give --data")
    if loaded.task != "classify":
        return _evaluate_task(args, loaded, data)
    if args.image_root:
        raise ValueError(f"--image-root is for COCO annotations; {args.run} is a classifier: "
                         "drop it")
    report = evaluate_run(loaded, data, split=args.split,
                          data_dir=args.data_dir or loaded.config.get("data_dir"),
                          batch_size=args.batch_size, tta=args.tta)
    png = Path(args.png) if args.png else Path(args.run) / f"confusion_{args.split}.png"
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.viz.confusion import plot_confusion_matrix

    plot_confusion_matrix(report.confusion, report.class_names, path=png)
    if args.json:
        print(json.dumps({**report.to_dict(), "confusion_png": str(png)}))
    else:
        print(report.to_text())
        print(f"\nconfusion matrix picture: {png}")
    return 0


def _evaluate_task(args: argparse.Namespace, loaded, data: str) -> int:
    """Localise / segment / detect: the task's metrics and pictures of the first 16 images
    (RUN/boxes_<split>.png: true and predicted boxes; RUN/masks_<split>.png: true and
    predicted masks, and RUN/iou_<split>.png: the per-class IoU bars; detection also
    RUN/pr_<split>.png, the precision-recall curve per class, and RUN/scores_<split>.png, the
    head's score maps for the first image)."""
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.run.evaluate import evaluate_task_run

    if args.tta is True:
        raise ValueError(f"--tta averages class scores over flips and is for classifiers; this "
                         f"run does {loaded.task}: drop --tta")
    image_root = args.image_root or (loaded.config.get("image_root") if not args.data else None)
    report = evaluate_task_run(loaded, data, split=args.split,
                               data_dir=args.data_dir or loaded.config.get("data_dir"),
                               batch_size=args.batch_size, image_root=image_root)
    result = report.to_dict()
    # import cost: matplotlib, only for the pictures
    from cnnkit.viz.bars import plot_per_class_iou
    from cnnkit.viz.tasks import plot_boxes_grid, plot_masks_grid

    run = Path(args.run)
    sample = report.sample
    pictures = {}
    if loaded.task == "segment":
        pictures["iou_png"] = Path(args.png) if args.png else run / f"iou_{args.split}.png"
        plot_per_class_iou(report.metrics["per_class_iou"], report.class_names,
                           miou=report.metrics["miou"], path=pictures["iou_png"])
        pictures["masks_png"] = run / f"masks_{args.split}.png"
        plot_masks_grid(sample["images"], sample["true"], sample["pred"], report.class_names,
                        path=pictures["masks_png"])
    else:
        pictures["boxes_png"] = run / f"boxes_{args.split}.png"
        plot_boxes_grid(sample["images"], sample["true_boxes"], sample["true_labels"],
                        sample["pred_boxes"], sample["pred_labels"], report.class_names,
                        pred_scores=sample["pred_scores"], path=pictures["boxes_png"])
    if loaded.task == "detect":
        from cnnkit.viz.tasks import plot_pr_curves, plot_score_maps  # import cost: matplotlib

        if sample["pr_curves"]:
            pictures["pr_png"] = run / f"pr_{args.split}.png"
            plot_pr_curves(sample["pr_curves"], ap=sample["voc_ap"], path=pictures["pr_png"])
        pictures["scores_png"] = run / f"scores_{args.split}.png"
        plot_score_maps(sample["images"][0], sample["score_maps"], report.class_names,
                        path=pictures["scores_png"])
    result.update({key: str(path) for key, path in pictures.items()})
    if args.json:
        print(json.dumps(result))
    else:
        print(report.to_text())
        print("\npictures: " + ", ".join(str(path) for path in pictures.values()))
    return 0
