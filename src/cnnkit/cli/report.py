"""``cnnkit report RUN``: one self-contained HTML page with everything about a trained run."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report", allow_abbrev=False, help="write a run's report as one self-contained HTML page",
        description="Evaluate a trained run on one split and write one HTML page (no network, "
                    "pictures embedded): config, model summary, final metrics, training curves, "
                    "confusion matrix, per-class metrics, most confident mistakes, first-layer "
                    "filters and the feature maps of one test image. Localise / segment / detect "
                    "runs show their task's metrics and true vs predicted boxes or masks.")
    p.add_argument("run", metavar="RUN", help="run folder written by cnnkit train")
    p.add_argument("--out", metavar="PATH", help="the page to write (default: RUN/report.html)")
    p.add_argument("--data", help="dataset to evaluate on (default: the run's own --data)")
    p.add_argument("--data-dir", help="where named datasets are looked up")
    p.add_argument("--image-root", help="COCO data: the folder its file names are relative to "
                                        "(default: the run's, else the JSON's folder)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="which split to evaluate (default: test)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.report import write_report

    path = write_report(args.run, args.out, split=args.split, data=args.data,
                        data_dir=args.data_dir, image_root=args.image_root)
    print(path)
    return 0
