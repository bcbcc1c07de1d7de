"""``cnnkit report RUN``: one self-contained HTML page with everything about a trained run."""
from __future__ import annotations

import argparse

from cnnkit.cli.evaluate import add_data_options


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
    add_data_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.report import write_report

    path = write_report(args.run, args.out, split=args.split, data=args.data,
                        data_dir=args.data_dir, image_root=args.image_root)
    print(path)
    return 0
