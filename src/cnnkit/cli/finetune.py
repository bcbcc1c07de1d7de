"""``cnnkit finetune RUN_OR_WEIGHTS --data DATA --epochs N ...``: transfer learning from the CLI.

Writes a normal run folder (so ``cnnkit evaluate``/``predict`` work on it) plus
``finetune.json`` (source, freezing settings, and the weight-loading report).
``cnnkit finetune --resume RUN`` continues an interrupted run with its saved settings.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnkit.train.config import TrainConfig

_FREEZE_HELP = ("none: train the new head for --head-epochs, then fine-tune everything; "
                "all-but-head: a frozen backbone, only the new head trains; up-to:NAME: layer "
                "groups up to NAME stay frozen (default: none)")


# The settings a new run takes; --resume reads them from the run folder instead.
_DEFAULTS = {"source": None, "data": None, "model": None, "out": None, "epochs": 6,
             "head_epochs": 2, "freeze": "none", "unfreeze_every": None, "lr": 1e-3,
             "lr_decay": 0.5, "optimizer": "adam", "weight_decay": 0.0, "batch_size": 64,
             "input_size": None, "val_split": 0.1, "seed": 0, "device": "auto",
             "no_strict": False, "overwrite": False}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune", allow_abbrev=False, help="fine-tune a trained network on new data",
        description="Start from a run folder or a weights file (.safetensors, .pt/.pth state "
                    "dict in torchvision naming), replace the classifier for the new classes, "
                    "train the head first, then unfreeze with lower learning rates for earlier "
                    "layers. Nothing is downloaded: point at local files.")
    p.add_argument("source", metavar="RUN_OR_WEIGHTS", nargs="?",
                   help="run folder or weights file (not with --resume)")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted fine-tuning run from "
                   "its last checkpoint (takes no other settings)")
    p.add_argument("--data", help="the new dataset (folder, file or name); required unless "
                   "--resume")
    p.add_argument("--model", help="registry name or spec of a bare weights file's architecture")
    p.add_argument("--out", help="run folder to write (default: runs/run-<time>)")
    p.add_argument("--epochs", type=int, default=_DEFAULTS["epochs"],
                   help="total epochs (default 6)")
    p.add_argument("--head-epochs", type=int, default=_DEFAULTS["head_epochs"],
                   help="epochs training only the new head first (default 2)")
    p.add_argument("--freeze", default=_DEFAULTS["freeze"], help=_FREEZE_HELP)
    p.add_argument("--unfreeze-every", type=int, default=_DEFAULTS["unfreeze_every"],
                   metavar="E",
                   help="unfreeze one layer group every E epochs (default: all at once)")
    p.add_argument("--lr", type=float, default=_DEFAULTS["lr"],
                   help="the head's learning rate (default 1e-3)")
    p.add_argument("--lr-decay", type=float, default=_DEFAULTS["lr_decay"],
                   help="learning-rate factor per layer group towards the input (default 0.5)")
    p.add_argument("--optimizer", default=_DEFAULTS["optimizer"],
                   help="sgd, adam, adamw, ... (default adam)")
    p.add_argument("--weight-decay", type=float, default=_DEFAULTS["weight_decay"],
                   help="(default 0)")
    p.add_argument("--batch-size", type=int, default=_DEFAULTS["batch_size"], help="(default 64)")
    p.add_argument("--input-size", type=int, default=_DEFAULTS["input_size"],
                   help="resize images to this size (default: the run's own size for a run "
                        "folder, the data's size for a weights file)")
    p.add_argument("--val-split", type=float, default=_DEFAULTS["val_split"], help="(default 0.1)")
    p.add_argument("--seed", type=int, default=_DEFAULTS["seed"], help="(default 0)")
    p.add_argument("--device", default=_DEFAULTS["device"],
                   help="auto, cpu, cuda or mps (default auto)")
    p.add_argument("--no-strict", action="store_true", default=_DEFAULTS["no_strict"],
                   help="load what matches even when some weights do not fit (the report is "
                        "printed either way)")
    p.add_argument("--overwrite", action="store_true", default=_DEFAULTS["overwrite"],
                   help="allow --out to name a folder that already holds a run")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def _input_size(args: argparse.Namespace) -> int | None:
    if args.input_size is not None or not Path(args.source).is_dir():
        return args.input_size
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.run.folder import MODEL_FILE, read_json

    _, height, width = read_json(Path(args.source) / MODEL_FILE)["input_shape"]
    return height if height == width else None


def _resume(args: argparse.Namespace, printer):
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.transfer_learning.finetune import finetune

    given = [name for name, default in _DEFAULTS.items() if getattr(args, name) != default]
    if given:
        flags = ", ".join("RUN_OR_WEIGHTS" if name == "source"
                          else "--" + name.replace("_", "-") for name in given)
        raise ValueError(f"--resume takes its settings from {args.resume}/config.json and "
                         f"finetune.json; remove {flags}")
    return finetune(resume=args.resume, callbacks=[printer],
                    progress=False if args.no_progress else None)


def run(args: argparse.Namespace) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.cli.train import _epoch_printer
    from cnnkit.transfer_learning.finetune import FineTuneSettings, finetune

    if args.resume is None and (args.source is None or args.data is None):
        missing = " and ".join(what for what, value in (("RUN_OR_WEIGHTS", args.source),
                                                        ("--data", args.data)) if value is None)
        raise ValueError(f"cnnkit finetune needs {missing} (or --resume RUN to continue a run)")
    try:
        if args.resume is not None:
            result = _resume(args, _epoch_printer())
        else:
            settings = FineTuneSettings(freeze=args.freeze, head_epochs=args.head_epochs,
                                        lr_decay=args.lr_decay,
                                        unfreeze_every=args.unfreeze_every,
                                        strict=not args.no_strict)
            config = TrainConfig(data=args.data, model=args.model or "pretrained",
                                 epochs=args.epochs, lr=args.lr, optimizer=args.optimizer,
                                 weight_decay=args.weight_decay, batch_size=args.batch_size,
                                 input_size=_input_size(args), val_split=args.val_split,
                                 seed=args.seed, device=args.device, out=args.out)
            result = finetune(args.source, config, model=args.model, settings=settings,
                              callbacks=[_epoch_printer()],
                              progress=False if args.no_progress else None,
                              overwrite=args.overwrite)
    except KeyboardInterrupt:
        where = args.resume or args.out or "the run folder"
        print(f"cnnkit: interrupted; the last completed epoch is saved in {where}/checkpoint. "
              f"Resume with: cnnkit finetune --resume {where}", file=sys.stderr)
        return 130
    if result.load_report is not None:
        print(result.load_report)
    res = result.run.results
    if "test_accuracy" in res:
        print(f"test accuracy {res['test_accuracy']:.4f}  test loss {res['test_loss']:.4f}")
    print(f"run folder: {result.run.out}")
    return 0
