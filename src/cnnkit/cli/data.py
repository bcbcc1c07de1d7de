"""``cnnkit data make NAME DIR`` / ``cnnkit data list``: write the generated digit scenes to disk.

The scenes (``mnist-localize``, ``mnist-segment``, ``mnist-detect``) are written in the on-disk
format of their task, so a user sees the format and can train on the folder with
``cnnkit train --data DIR``.
"""
from __future__ import annotations

import argparse
import json

_FORMATTER = argparse.RawDescriptionHelpFormatter


def add_parser(subparsers) -> None:
    data = subparsers.add_parser(
        "data", help="write the generated digit scenes (localise, segment, detect) to disk",
        description="Generated datasets for the tasks beyond classification: digits pasted on "
                    "a larger canvas with their exact boxes and masks. `make` writes one in its "
                    "task's on-disk format; `list` shows the names.",
        formatter_class=_FORMATTER)
    # type(data): the CLI's own parser class, so usage errors exit with code 2 here too.
    sub = data.add_subparsers(dest="data_command", metavar="WHAT", required=True,
                              parser_class=type(data))

    p = sub.add_parser(
        "make", help="generate a scene set and write it to a folder",
        description="Generate the train/val/test splits of a scene set (deterministic for a "
                    "seed) and write them in their task's on-disk format: mnist-localize as a "
                    "localisation folder (labels.csv), mnist-segment as a segmentation folder "
                    "(images/ + masks/, classes.txt), "
                    "mnist-detect as COCO (annotations.json per split). The digits come from "
                    "MNIST when found (--data-dir, $CNNKIT_DATA), else scikit-learn's 8x8 digits.",
        epilog="examples:\n  cnnkit data make mnist-detect data/det\n"
               "  cnnkit data make mnist-segment data/seg --train 2000 --val 200 --test 200\n"
               "  cnnkit train --data data/det",
        formatter_class=_FORMATTER)
    p.add_argument("name", metavar="NAME", help="scene set (see `cnnkit data list`)")
    p.add_argument("dir", metavar="DIR", help="folder to write into (new or empty)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes (default: 0)")
    # typed here, not read from scenes.default_sizes: the CLI starts without importing torch
    for split, default in (("train", "6000; mnist-localize 40000, mnist-segment 8000"), ("val", "1000"),
                           ("test", "1000; mnist-localize 2000")):
        p.add_argument(f"--{split}", type=int, default=None, metavar="N",
                       help=f"scenes in the {split} split (default: {default}"
                            f"{'' if split == 'train' else '; 0 leaves it out'})")
    p.add_argument("--source", default="auto", metavar="auto|mnist|builtin",
                   help="digits: MNIST if found else the 8x8 digits (auto, default), MNIST only "
                        "(mnist), or the 8x8 digits (builtin)")
    p.add_argument("--data-dir", metavar="D", default=None,
                   help="where to look for mnist/ (default: $CNNKIT_DATA or the user cache)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty DIR, replacing its train/, val/, test/ and "
                        "classes.txt (other files are kept)")
    p.set_defaults(func=make)

    p = sub.add_parser("list", help="list the scene sets with their task, canvas and digits",
                       description="List the scene sets `cnnkit data make` and `--data` know: "
                                   "their task, canvas size, digits per image and on-disk "
                                   "format.")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=list_scenes)


def make(args: argparse.Namespace) -> int:
    # import cost: the CLI starts in 0.2 s; the scenes import torch
    from cnnkit.data.scenes import FORMATS, SCENES, default_sizes, write_scenes

    given = {split: getattr(args, split) for split in ("train", "val", "test")
             if getattr(args, split) is not None}
    folder = write_scenes(args.name, args.dir, seed=args.seed, sizes=given, source=args.source,
                          data_dir=args.data_dir, overwrite=args.overwrite)
    sizes = {**default_sizes(args.name), **given}
    task = SCENES[args.name].task
    print(f"wrote {args.name} (seed {args.seed}) to {folder}")
    for split, n in sizes.items():
        if n:
            print(f"  {split}: {n} images")
    print(f"format: {FORMATS[task]}")
    print(f"train on it: cnnkit train --data {folder}")
    return 0


def list_scenes(args: argparse.Namespace) -> int:
    # import cost: the CLI starts in 0.2 s; the scenes import torch
    from cnnkit.data.scenes import FORMATS, SCENES, scene_names

    entries = []
    for name in scene_names():
        spec = SCENES[name]
        digits = (str(spec.min_digits) if spec.min_digits == spec.max_digits
                  else f"{spec.min_digits}-{spec.max_digits}")
        entries.append({"name": name, "task": spec.task, "canvas": [spec.canvas, spec.canvas],
                        "digits": digits, "format": FORMATS[spec.task].split(":")[0]})
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    width = max(len(e["name"]) for e in entries)
    print(f"{'NAME'.ljust(width)}  {'TASK':8}  {'CANVAS':>6}  {'DIGITS':>6}  FORMAT")
    for e in entries:
        canvas = f"{e['canvas'][0]}x{e['canvas'][1]}"
        print(f"{e['name'].ljust(width)}  {e['task']:8}  {canvas:>6}  {e['digits']:>6}  "
              f"{e['format']}")
    return 0
