"""``cnnkit finetune RUN_OR_WEIGHTS --data DATA --epochs N ...``: transfer learning from the CLI.

Writes a normal run folder (so ``cnnkit evaluate``/``predict`` work on it) plus
``finetune.json`` (source, freezing settings, and the weight-loading report).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cnnkit.train.config import TrainConfig

_FREEZE_HELP = ("none: train the new head for --head-epochs, then fine-tune everything; "
                "all-but-head: a frozen backbone, only the new head trains; up-to:NAME: layer "
                "groups up to NAME stay frozen (default: none)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune", allow_abbrev=False, help="fine-tune a trained network on new data",
        description="Start from a run folder or a weights file (.safetensors, .pt/.pth state "
                    "dict in torchvision naming), replace the classifier for the new classes, "
                    "train the head first, then unfreeze with lower learning rates for earlier "
                    "layers. Nothing is downloaded: point at local files.")
    p.add_argument("source", metavar="RUN_OR_WEIGHTS", help="run folder or weights file")
    p.add_argument("--data", required=True, help="the new dataset (folder, file or name)")
    p.add_argument("--model", help="registry name or spec of a bare weights file's architecture")
    p.add_argument("--out", help="run folder to write (default: runs/run-<time>)")
    p.add_argument("--epochs", type=int, default=6, help="total epochs (default 6)")
    p.add_argument("--head-epochs", type=int, default=2,
                   help="epochs training only the new head first (default 2)")
    p.add_argument("--freeze", default="none", help=_FREEZE_HELP)
    p.add_argument("--unfreeze-every", type=int, default=None, metavar="E",
                   help="unfreeze one layer group every E epochs (default: all at once)")
    p.add_argument("--lr", type=float, default=1e-3, help="the head's learning rate (default 1e-3)")
    p.add_argument("--lr-decay", type=float, default=0.5,
                   help="learning-rate factor per layer group towards the input (default 0.5)")
    p.add_argument("--optimizer", default="adam", help="sgd, adam, adamw, ... (default adam)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="(default 0)")
    p.add_argument("--batch-size", type=int, default=64, help="(default 64)")
    p.add_argument("--input-size", type=int, default=None,
                   help="resize images to this size (default: the run's own size for a run "
                        "folder, the data's size for a weights file)")
    p.add_argument("--val-split", type=float, default=0.1, help="(default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="(default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    p.add_argument("--no-strict", action="store_true",
                   help="load what matches even when some weights do not fit (the report is "
                        "printed either way)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow --out to name a folder that already holds a run")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def _input_size(args: argparse.Namespace) -> int | None:
    if args.input_size is not None or not Path(args.source).is_dir():
        return args.input_size
    from cnnkit.train.run_folder import MODEL_FILE, read_json

    _, height, width = read_json(Path(args.source) / MODEL_FILE)["input_shape"]
    return height if height == width else None


def run(args: argparse.Namespace) -> int:
    from cnnkit.cli.train import _EpochPrinter
    from cnnkit.transfer_learning.finetune import FineTuneSettings, finetune

    settings = FineTuneSettings(freeze=args.freeze, head_epochs=args.head_epochs,
                                lr_decay=args.lr_decay, unfreeze_every=args.unfreeze_every,
                                strict=not args.no_strict)
    config = TrainConfig(data=args.data, model=args.model or "pretrained", epochs=args.epochs,
                         lr=args.lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
                         batch_size=args.batch_size, input_size=_input_size(args),
                         val_split=args.val_split, seed=args.seed, device=args.device,
                         out=args.out)
    result = finetune(args.source, config, model=args.model, settings=settings,
                      callbacks=[_EpochPrinter()], progress=False if args.no_progress else None,
                      overwrite=args.overwrite)
    print(result.load_report)
    res = result.run.results
    if "test_accuracy" in res:
        print(f"test accuracy {res['test_accuracy']:.4f}  test loss {res['test_loss']:.4f}")
    print(f"run folder: {result.run.out}")
    return 0
