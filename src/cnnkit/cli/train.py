"""``cnnkit train``: flags (or ``--config file.yaml|json``) → TrainConfig → ``cnnkit.train.train``.

Every TrainConfig field is a flag (``--batch-size``, ``--no-channels-last``, ...); flags override
the config file; unknown options are usage errors (exit 2). ``--nproc N`` re-runs the same command
under ``torchrun`` in N processes (see :mod:`cnnkit.train.distributed`).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import typing
from pathlib import Path

from cnnkit.train.config import TrainConfig
from cnnkit.train.recipes import default_recipe, get_recipe, recipe_names


def _flag_type(hint) -> type | None:
    """The argparse type of a TrainConfig field (``int | None`` -> int), None for bools."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    base = args[0]
    return None if base is bool else base


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", allow_abbrev=False, help="train a CNN and write a run folder",
        description="Train a model on a dataset; writes config, weights (safetensors), "
                    "checkpoints and metrics to the run folder (--out).")
    p.add_argument("--config", metavar="FILE", help="settings from a .yaml/.yml/.json file "
                   "(flags given as well override it)")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run from its "
                   "last checkpoint (takes no other settings)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow --out to name a folder that already holds a run")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--curves", choices=("background", "now"), default="background",
                   help="draw RUN/curves.png in a background process that finishes ~1 s after "
                        "the command (default), or now, before the command exits")
    p.add_argument("--recipe", metavar="NAME", choices=recipe_names(),
                   help="start from a tuned recipe (" + ", ".join(recipe_names()) + "); "
                        "--config and flags override its settings; a named dataset with a "
                        "tuned recipe uses it by default: --data mnist starts from mnist-fast)")
    p.add_argument("--no-recipe", action="store_true",
                   help="train a named dataset with the generic defaults, not its tuned recipe")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train with N processes on this machine (DistributedDataParallel via "
                        "torchrun: gloo on CPU, NCCL on GPUs; --batch-size stays the global "
                        "batch); for several machines run torchrun yourself (README: Scaling out)")
    hints = typing.get_type_hints(TrainConfig)
    docs = TrainConfig.field_docs()  # one source for the settings' meaning: the docstring
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = _flag_type(hints[field.name])
        help_text = f"{docs[field.name]} (default: {field.default!r})".replace("%", "%%")
        if kind is None:
            p.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=help_text)
        else:
            p.add_argument(flag, dest=field.name, type=kind, default=argparse.SUPPRESS,
                           metavar=field.name.upper(), help=help_text)
    p.set_defaults(func=run)


# What each task's epoch line shows after the loss (classification: "acc", as always).
_SHOWN = {"accuracy": "acc", "mean_iou": "mean_iou", "iou50": "iou50", "miou": "miou",
          "pixel_accuracy": "pixel_acc", "map": "map", "map50": "map50"}


def _epoch_printer():
    """A callback that prints the one-line summary of each epoch (the CLI's only output while
    training)."""
    from cnnkit.train.callbacks import Callback  # import cost: torch, only when training

    class EpochPrinter(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            parts = [f"epoch {epoch}/{trainer.config.epochs}", f"loss {logs['loss']:.4f}"]
            parts += [f"{short} {logs[key]:.4f}" for key, short in _SHOWN.items() if key in logs]
            if "val_loss" in logs:
                parts.append(f"val_loss {logs['val_loss']:.4f}")
                parts += [f"val_{short} {logs['val_' + key]:.4f}"
                          for key, short in _SHOWN.items() if "val_" + key in logs]
            parts += [f"lr {logs['lr']:.2e}", f"{logs['images_per_s']:.0f} img/s",
                      f"{logs['time_s']:.1f}s"]
            print("  ".join(parts), flush=True)

    return EpochPrinter()


def _settings(args: argparse.Namespace) -> dict:
    names = TrainConfig.field_names()
    return {name: getattr(args, name) for name in names if hasattr(args, name)}


def _torchrun_argv(args: argparse.Namespace, out: str | None) -> list[str]:
    """This command line again, without ``--nproc``, for every process torchrun starts.

    A new run gets an explicit ``--out`` so that all processes agree on the run folder.
    """
    switches = {"--debug": args.debug, "--verbose": args.verbose}
    argv = [flag for flag, on in switches.items() if on] + ["train"]
    for flag, value in (("--config", args.config), ("--resume", args.resume),
                        ("--recipe", args.recipe)):
        if value:
            argv += [flag, value]
    for flag, on in (("--overwrite", args.overwrite), ("--no-progress", args.no_progress),
                     ("--no-recipe", args.no_recipe)):
        if on:
            argv.append(flag)
    for name, value in _settings(args).items():
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            argv += [f"--{flag}", str(value)]
    if not args.resume and not hasattr(args, "out"):
        argv += ["--out", out]
    return argv


def _launch(args: argparse.Namespace, out: str) -> int:
    from cnnkit.train import distributed  # import cost: torch, only when training

    code = distributed.launch(args.nproc, ["cnnkit", *_torchrun_argv(args, out)])
    if code:
        print(f"cnnkit: error: training with {args.nproc} processes failed (torchrun exit code "
              f"{code}); the failed rank and its error are reported above", file=sys.stderr)
        return 1
    return 0


def config_of(args: argparse.Namespace) -> tuple[TrainConfig, str | None]:
    """The TrainConfig of a new run: recipe < --config file < flags; and the line saying which
    recipe a named dataset started from (None when none was chosen for the user).

    ``--recipe NAME`` names the recipe; without it (and without ``--config`` or ``--no-recipe``)
    a named dataset with a tuned recipe (``cnnkit.train.recipes.DEFAULT_RECIPES``) starts from
    that one, so ``cnnkit train --data mnist`` is the fast path.
    """
    settings = _settings(args)
    name, note = args.recipe, None
    if not name and not args.config and not args.no_recipe:
        name = default_recipe(settings.get("data"))
        if name:
            note = (f"recipe {name}: the tuned settings for --data {settings['data']} "
                    f"({get_recipe(name).description}); flags given override them, "
                    "--no-recipe trains with the generic defaults")
    recipe = dict(get_recipe(name).settings) if name else {}
    base = TrainConfig.from_file(args.config).to_dict() if args.config else {}
    return TrainConfig.from_dict({**recipe, **base, **settings}), note


def run(args: argparse.Namespace) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.train import distributed
    from cnnkit.train.pipeline import default_run_folder, train

    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1 processes, got {args.nproc!r}")
    main_rank = distributed.env_context().is_main  # only rank 0 prints
    settings = _settings(args)
    progress = False if args.no_progress else None
    # early stopping and learning-rate drops are said even without --verbose
    logging.getLogger("cnnkit.train.events").setLevel(logging.INFO)
    if args.resume:
        if settings or args.config or args.recipe:
            given = (", ".join("--" + k.replace("_", "-") for k in settings)
                     or ("--config" if args.config else "--recipe"))
            raise ValueError(f"--resume takes its settings from {args.resume}/config.json; "
                             f"remove {given}")
        out = args.resume
        config = None
    else:
        config, note = config_of(args)
        if note and main_rank:
            print(note, flush=True)
        out = config.out
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch(args, out or str(default_run_folder()))
    printer = [_epoch_printer()] if main_rank else []
    try:
        result = train(config, resume=args.resume, callbacks=printer, progress=progress,
                       overwrite=args.overwrite, curves=args.curves)
    except KeyboardInterrupt:
        where = out or "the run folder"
        print(f"cnnkit: interrupted; the last completed epoch is saved in {where}/checkpoint. "
              f"Resume with: cnnkit train --resume {where}", file=sys.stderr)
        return 130
    finally:
        distributed.shutdown()
    if not main_rank:
        return 0
    res = result.results
    shown = [f"test {key} {res['test_' + key]:.4f}" for key in _SHOWN if "test_" + key in res]
    if shown:
        print("  ".join(shown + [f"test loss {res['test_loss']:.4f}"]))
    print(f"run folder: {result.out}")
    for line in next_steps(result.out, res):
        print(line)
    return 0


def next_steps(run, results: dict | None = None) -> list[str]:
    """What to try after training, with the run folder in each command.

    ``results`` (results.json's content) says which split ``cnnkit evaluate`` can test: the
    test split when training tested one, else the validation split, else other data.
    """
    results = results or {}
    if "test_loss" in results or not results:
        evaluate = f"  cnnkit evaluate {run}          # test metrics, per-class table"
    elif "val_loss" in results:
        evaluate = f"  cnnkit evaluate {run} --split val   # validation metrics (no test split)"
    else:
        evaluate = (f"  cnnkit evaluate {run} --data DIR   # metrics on other labelled images "
                    "(no test or validation split)")
    lines = ["next:", evaluate,
             f"  cnnkit show curves {run}       # loss / accuracy / lr per epoch",
             f"  cnnkit serve {run}             # a web page to try the model on images"]
    if (Path(run) / "tensorboard").is_dir():
        lines.append(f"  tensorboard --logdir {Path(run) / 'tensorboard'}")
    return lines
