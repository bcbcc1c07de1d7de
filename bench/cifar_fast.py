"""Benchmark 3: ``--recipe cifar10-fast`` — time to 90 % and 94 % CIFAR-10 test accuracy.

Run from the repository root:  .venv/bin/python -m bench.cifar_fast [--seeds 5] [--epochs 10]

The recipe (cnnkit.train.recipes): the whole training set on the device as uint8 (channels_last
batches), batched flip + translate(2) on the device, the airbench net with its 2×2 first conv
whitened on the training images and frozen, label smoothing 0.2, Nesterov SGD with a one-cycle
schedule, an EMA of the weights, flip test-time augmentation, bf16 where native; on a GPU also
``torch.compile``. The test accuracy is measured after every epoch (not counted in the time);
the table gives, per seed, the training seconds until it first reached 90 % and 94 %.

Skips with a printed reason when CIFAR-10 is not in ``$CNNKIT_SHARED_DATA/cifar10`` (it is never
downloaded here). The airbench94 side-by-side on a GPU is not automated: run the public
``airbench94.py`` on the same GPU and compare its printed time with this table.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from bench._common import SHARED_DATA, machine_note, peak_rss_mb, print_table, timed
from cnnkit.data.loader import InMemoryLoader
from cnnkit.data.normalization import Normalization
from cnnkit.data.open import open_data
from cnnkit.errors import DataError
from cnnkit.models import create
from cnnkit.train import Trainer
from cnnkit.train.device import resolve_device
from cnnkit.train.pipeline import EpochAugment
from cnnkit.train.recipes import prepare_model, recipe_config

MILESTONES = (0.90, 0.94)


def run_seed(splits, seed: int, epochs: int) -> dict:
    device = resolve_device("auto")
    config = recipe_config("cifar10-fast", seed=seed, epochs=epochs,
                           compile=device.type == "cuda")
    torch.manual_seed(seed)
    norm = Normalization.fit(splits.train.images)
    model = create("airbench", num_classes=10, in_channels=3)
    prepare_model(model, norm.apply(splits.train.images[:5000]))
    augment = EpochAugment(config.augment, num_classes=10, seed=seed)
    train_loader = InMemoryLoader(splits.train, batch_size=config.batch_size, seed=seed,
                                  device=device, normalization=norm, augment=augment,
                                  channels_last=True)
    test_loader = InMemoryLoader(splits.test, batch_size=2000, shuffle=False, device=device,
                                 normalization=norm, channels_last=True)
    trainer = Trainer(model, config, progress=False)
    trainer._build_scheduler(len(train_loader), epochs)
    elapsed, reached, accuracy = 0.0, {}, 0.0
    for epoch in range(epochs):
        train_loader.set_epoch(epoch)
        augment.set_epoch(epoch)
        elapsed += timed(lambda: trainer.train_epoch(train_loader, epoch + 1, epochs))[0]
        accuracy = trainer.evaluate(test_loader)["accuracy"]
        for target in MILESTONES:
            if accuracy >= target and target not in reached:
                reached[target] = elapsed
        print(f"  seed {seed} epoch {epoch + 1}: test acc {accuracy:.4f} after {elapsed:.1f} s",
              flush=True)
    return {"reached": reached, "accuracy": accuracy, "time_s": elapsed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=recipe_config("cifar10-fast").epochs)
    args = parser.parse_args(argv)
    try:
        splits = open_data("cifar10", data_dir=SHARED_DATA, download=False, progress=False)
    except DataError as exc:
        print(f"skipping bench.cifar_fast: CIFAR-10 is not available ({exc})")
        return
    print(machine_note())
    runs = [run_seed(splits, seed, args.epochs) for seed in range(args.seeds)]
    rows = [[f"seed {i}", *(f"{r['reached'][t]:.1f}" if t in r["reached"] else "not reached"
                            for t in MILESTONES), f"{r['time_s']:.1f}",
             f"{100 * r['accuracy']:.2f}"] for i, r in enumerate(runs)]
    accs = np.array([r["accuracy"] for r in runs])
    rows.append(["mean", "", "", f"{np.mean([r['time_s'] for r in runs]):.1f}",
                 f"{100 * accs.mean():.2f} ± {100 * accs.std():.2f}"])
    print_table(f"cifar10-fast, {args.epochs} epochs (peak RSS {peak_rss_mb():.0f} MiB)",
                ["run", "s to 90%", "s to 94%", "s total", "final test acc %"], rows)


if __name__ == "__main__":
    main()
