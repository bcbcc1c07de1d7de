"""Transfer learning pays off: pretrain on MNIST 0–4, fine-tune on 500 labelled images of 5–9.

Three ways to train the same small CNN on the same 500 images with the same budget (epochs,
optimizer, schedule), evaluated on the whole 5–9 test set, mean ± std over seeds:

* scratch: random initialisation;
* frozen backbone + new head: the 0–4 network's conv layers stay frozen; its fc(128) and a new
  5-way classifier train;
* full fine-tune: the 0–4 network, new head first (``--head-epochs``), then everything at
  discriminative rates (``GradualUnfreezing``, lr × 0.5 per layer group towards the input).

CIFAR-10 -> Fashion-MNIST (the issue's second pair) runs only when both sets are present.

Run from the repo root:  python -m bench.transfer [--seeds 5] [--epochs 5] [--n 500]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench._common import MNIST, SHARED_DATA, load_mnist
from cnnkit import Sequential
from cnnkit.data.dataset import ImageData
from cnnkit.data.loader import InMemoryLoader
from cnnkit.data.normalization import Normalization
from cnnkit.train import Trainer, TrainConfig
from cnnkit.transfer_learning import GradualUnfreezing, freeze, transfer

# ---------------------------------------------------------------------------- settings
SPEC = ("conv(32,3,padding=same) relu maxpool(2) conv(64,3,padding=same) relu maxpool(2) "
        "flatten fc(128) relu fc(5)")
CONV_LAYERS = ["0", "3"]  # the two conv layers of SPEC: the "backbone" the frozen variant keeps
PRETRAIN_EPOCHS = 1
BATCH = 64
LR = 2e-3  # Adam, peak rate (cosine schedule)


def subset(data, digits, n=None, seed=0):
    """Images of ``digits`` (labels re-numbered 0..len-1), ``n`` of them stratified at random."""
    keep = torch.isin(data.labels, torch.tensor(digits)).nonzero().flatten()
    if n is not None:
        keep = keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(seed))[:n]]
    remap = torch.full((10,), -1, dtype=torch.int64)
    remap[torch.tensor(digits)] = torch.arange(len(digits))
    return ImageData(data.images[keep], remap[data.labels[keep]], [str(d) for d in digits])


def fit(model, data, norm, epochs, seed, callbacks=()):
    torch.manual_seed(seed)
    config = TrainConfig(epochs=epochs, lr=LR, batch_size=BATCH, device="cpu", seed=seed)
    loader = InMemoryLoader(data, batch_size=BATCH, shuffle=True, seed=seed, normalization=norm)
    trainer = Trainer(model, config, callbacks=list(callbacks), progress=False)
    trainer.fit(loader)
    return trainer


def accuracy(trainer, data, norm):
    loader = InMemoryLoader(data, batch_size=1024, shuffle=False, normalization=norm)
    return trainer.evaluate(loader)["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5, help="fine-tune budget (all methods)")
    parser.add_argument("--head-epochs", type=int, default=1)
    parser.add_argument("--n", type=int, default=500, help="labelled 5–9 training images")
    args = parser.parse_args()
    if not (MNIST / "train-images-idx3-ubyte.gz").exists():
        print(f"skipped: MNIST is not in {MNIST}")
        return
    train, test = load_mnist()
    pretrain = subset(train, [0, 1, 2, 3, 4])
    target_test = subset(test, [5, 6, 7, 8, 9])
    norm = Normalization.fit(train.images)

    start = time.perf_counter()
    torch.manual_seed(0)
    base = Sequential.from_spec(SPEC, "28x28x1")
    pre = fit(base, pretrain, norm, PRETRAIN_EPOCHS, seed=0)
    print(f"pretrained on {len(pretrain)} images of 0-4 in {time.perf_counter() - start:.0f}s: "
          f"0-4 test accuracy {accuracy(pre, subset(test, [0, 1, 2, 3, 4]), norm):.4f}")
    state = {k: v.clone() for k, v in base.state_dict().items()}

    results: dict[str, list[float]] = {"scratch": [], "frozen backbone + new head": [],
                                       "full fine-tune": []}
    for seed in range(args.seeds):
        small = subset(train, [5, 6, 7, 8, 9], n=args.n, seed=seed)
        torch.manual_seed(seed)
        scratch = Sequential.from_spec(SPEC, "28x28x1")
        results["scratch"].append(accuracy(fit(scratch, small, norm, args.epochs, seed),
                                           target_test, norm))
        for name in ("frozen backbone + new head", "full fine-tune"):
            model = Sequential.from_spec(SPEC, "28x28x1")
            model.load_state_dict(state)
            torch.manual_seed(seed)
            transfer(model, 5)
            if name == "full fine-tune":  # head first, then unfreeze with lower early lrs
                freeze(model, all_but_head=True)
                callbacks = [GradualUnfreezing(args.head_epochs, lr_decay=0.5)]
            else:  # the conv feature extractor stays as pretrained; the fc layers train
                freeze(model, layers=CONV_LAYERS)
                callbacks = []
            trainer = fit(model, small, norm, args.epochs, seed, callbacks)
            results[name].append(accuracy(trainer, target_test, norm))
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in results.items()),
              flush=True)

    print(f"\nMNIST 0-4 -> 5-9, {args.n} labelled images, {args.epochs} epochs each, "
          f"{args.seeds} seeds, test on {len(target_test)} images")
    print(f"{'method':<28} {'accuracy (mean ± std)':>22}")
    for name, values in results.items():
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{name:<28} {statistics.mean(values):>14.4f} ± {std:.4f}")
    print(f"total time {time.perf_counter() - start:.0f}s")
    cifar = SHARED_DATA / "cifar10"
    fashion = SHARED_DATA / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    if not cifar.exists() or not fashion.exists():
        print(f"\nCIFAR-10 -> Fashion-MNIST: skipped, the sets are not here "
              f"({cifar} exists: {cifar.exists()}; Fashion-MNIST images: {fashion.exists()})")


if __name__ == "__main__":
    main()
