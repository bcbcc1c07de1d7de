"""``cnnkit evaluate RUN --data DATA``: accuracy, loss, per-class table and confusion matrix."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", allow_abbrev=False, help="evaluate a trained run on a dataset",
        description="Accuracy, loss, per-class precision/recall/F1 and the confusion matrix "
                    "(as text, and as a PNG next to the run).")
    p.add_argument("run", metavar="RUN", help="run folder written by cnnkit train")
    p.add_argument("--data", help="dataset to evaluate on (default: the run's own --data)")
    p.add_argument("--data-dir", help="where named datasets are looked up")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="which split to evaluate (default: test)")
    p.add_argument("--batch-size", type=int, default=256, help="images per batch (default 256)")
    p.add_argument("--tta", action="store_true", help="average with horizontally flipped images")
    p.add_argument("--png", metavar="FILE",
                   help="confusion-matrix picture (default: RUN/confusion_<split>.png)")
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
