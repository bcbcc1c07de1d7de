"""``cnnkit embed RUN --data DATA|IMAGE... --out features.npz``: penultimate-layer features.

The .npz holds ``features`` (N, F) float32, ``class_names``, and ``labels`` (N,) for a dataset
or ``files`` for image files; load it with ``numpy.load`` and train any classifier on it.
"""
from __future__ import annotations

import argparse

from cnnkit._checks import check_positive_int

SPLITS = ("train", "val", "test")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "embed", allow_abbrev=False, help="write the penultimate-layer features of images",
        description="Run images through a trained model and save the features that feed its "
                    "classifier (one vector per image) to an .npz file.")
    p.add_argument("run", metavar="RUN", help="run folder written by cnnkit train/finetune")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a dataset (folder, file or name)")
    source.add_argument("--images", nargs="+", metavar="IMAGE",
                        help="image files, folders or glob patterns")
    p.add_argument("--split", choices=SPLITS, default="train",
                   help="which split of --data (default train)")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--batch-size", type=int, default=256, help="(default 256)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.run.folder import load_run
    from cnnkit.transfer_learning.embed import extract_features, save_features

    check_positive_int(args.batch_size, "--batch-size")
    loaded = load_run(args.run)
    c, h, w = loaded.input_shape
    labels = files = None
    if args.data:
        # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
        from cnnkit.data.open import open_data

        splits = open_data(args.data, size=(h, w), channels=c)
        part = getattr(splits, args.split)
        if part is None:
            available = [s for s in SPLITS if getattr(splits, s) is not None]
            raise ValueError(f"--split {args.split!r}: {args.data!r} has no such split "
                             f"(it has {', '.join(available)})")
        images, labels, class_names = part.images, part.labels.numpy(), part.class_names
    else:
        # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
        import numpy as np  # import cost: only when embedding files
        import torch  # import cost: only when embedding files

        from cnnkit.data.folder import decode_image
        from cnnkit.run.predict import expand_inputs

        paths = expand_inputs(args.images)
        images = torch.from_numpy(np.stack([decode_image(f, channels=c, size=(h, w))
                                            for f in paths]))  # (N, C, H, W)
        files, class_names = [str(f) for f in paths], loaded.class_names
    features = extract_features(loaded.model, images, normalization=loaded.normalization,
                                batch_size=args.batch_size)
    path = save_features(args.out, features, labels, class_names, files)
    print(f"{features.shape[0]} images -> features {features.shape[1]}-d, written to {path}")
    return 0
