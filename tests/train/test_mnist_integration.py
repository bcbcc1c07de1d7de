"""Integration: LeNet-5 on a real MNIST subset reaches >= 97% test accuracy (CI budget: ~1 min).

Uses ``../shared/data/mnist`` through the ``mnist_dir`` fixture, which skips when it is missing.
"""
import torch

from cnnkit.data.loader import InMemoryLoader
from cnnkit.data.normalization import Normalization
from cnnkit.data.open import open_data
from cnnkit.models.registry import create
from cnnkit.train.config import TrainConfig
from cnnkit.train.trainer import Trainer

TRAIN_IMAGES, TEST_IMAGES = 12_000, 2_000


def test_lenet5_on_mnist_subset_reaches_97_percent(mnist_dir):
    splits = open_data(str(mnist_dir))
    g = torch.Generator().manual_seed(0)
    train = splits.train.subset(torch.randperm(len(splits.train), generator=g)[:TRAIN_IMAGES])
    test = splits.test.subset(torch.arange(TEST_IMAGES))
    norm = Normalization.fit(train.images)
    torch.manual_seed(0)
    # LeNet-5's layers with ReLU and max pooling (the modern variant) train faster than tanh.
    model = create("lenet5", num_classes=10, in_channels=1, input_size=28, activation="relu",
                   pool="max")
    config = TrainConfig(epochs=3, batch_size=64, lr=3e-3, optimizer="adam", schedule="onecycle",
                         device="cpu")
    trainer = Trainer(model, config, progress=False)
    trainer.fit(InMemoryLoader(train, batch_size=64, normalization=norm))
    result = trainer.evaluate(InMemoryLoader(test, batch_size=500, shuffle=False,
                                             normalization=norm))
    assert result["accuracy"] >= 0.97, result
