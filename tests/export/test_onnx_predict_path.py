"""LoadedModel.predict_proba's short path for an onnxruntime classifier (OnnxForward).

The exported graph is fixed: its output kind is read once, when the backend is chosen, and the
prediction neither walks the PyTorch modules nor switches their mode. These tests check that
the short path gives exactly the numbers of the general one (cnnkit.run.outputs.predict_proba
with the same forward), that it leaves the modules alone, and that TTA still takes the
general path.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install "
                                          "'cnnkit[onnx]'); the onnxruntime backend needs it")

from cnnkit.data.normalization import Normalization  # noqa: E402
from cnnkit.export.runtime import OnnxForward, use_backend  # noqa: E402
from cnnkit.run.folder import LoadedModel  # noqa: E402
from cnnkit.run.outputs import LOG_PROBS, LOGITS, PROBS, predict_proba  # noqa: E402


class ModeRecorder(nn.Sequential):
    """A plain test network that notes every ``train(mode)`` call made on it."""

    def __init__(self, *layers: nn.Module):
        super().__init__(*layers)
        self.mode_calls: list[bool] = []

    def train(self, mode: bool = True):
        self.mode_calls.append(mode)
        return super().train(mode)


def _network(last: nn.Module | None) -> ModeRecorder:
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
              nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 8 * 8, 3)]
    return ModeRecorder(*layers, *([last] if last is not None else []))


def _onnx_loaded(last: nn.Module | None) -> LoadedModel:
    loaded = LoadedModel(_network(last).eval(), ["a", "b", "c"], Normalization((0.3,), (0.4,)),
                         (1, 16, 16), {})
    return use_backend(loaded, "onnxruntime")


def _pixels(n: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("last, kind", [(None, LOGITS), (nn.Softmax(dim=1), PROBS),
                                        (nn.LogSoftmax(dim=1), LOG_PROBS)])
def test_the_short_path_gives_the_general_paths_numbers(last, kind):
    loaded = _onnx_loaded(last)
    assert isinstance(loaded.forward, OnnxForward) and loaded.forward.output_kind == kind
    pixels = _pixels(300)
    for batch_size in (512, 128):  # one batch, and three (128 + 128 + 44)
        fast = loaded.predict_proba(pixels, batch_size=batch_size)
        x = loaded._prepare(pixels)
        general = predict_proba(loaded.model, x.split(batch_size), forward=loaded.forward)
        assert fast.shape == (300, 3) and fast.dtype == torch.float32
        assert torch.equal(fast, general)
    # probabilities once: a softmax applied to a softmax's output would flatten them
    torch.testing.assert_close(fast.sum(1), torch.ones(300))
    eager = use_backend(loaded, "torch").predict_proba(pixels)
    torch.testing.assert_close(fast, eager, rtol=1e-4, atol=1e-5)


def test_one_image_and_float_pixels():
    loaded = _onnx_loaded(None)
    pixels = _pixels(2)
    one = loaded.predict_proba(pixels[0])  # (C, H, W) -> (1, K)
    assert one.shape == (1, 3)
    assert torch.equal(one, loaded.predict_proba(pixels[:1]))
    torch.testing.assert_close(loaded.predict_proba(pixels.float() / 255),
                               loaded.predict_proba(pixels), rtol=1e-5, atol=1e-6)


def test_the_short_path_leaves_the_modules_alone_and_tta_does_not():
    loaded = _onnx_loaded(None)
    loaded.model.train()  # a user's model left in training mode: the graph is eval already
    loaded.model.mode_calls.clear()
    pixels = _pixels(20)
    probs = loaded.predict_proba(pixels)
    assert loaded.model.mode_calls == [] and loaded.model.training
    eval_probs = use_backend(LoadedModel(loaded.model.eval(), loaded.class_names,
                                         loaded.normalization, loaded.input_shape, {}),
                             "torch").predict_proba(pixels)
    torch.testing.assert_close(probs, eval_probs, rtol=1e-4, atol=1e-5)  # dropout/BN off
    # TTA runs PyTorch's steps on both flips through the general path, which puts a
    # training model in eval mode and back
    loaded.model.train()
    loaded.model.mode_calls.clear()
    loaded.predict_proba(pixels, tta=True)
    assert loaded.model.mode_calls == [False, True] and loaded.model.training


def test_no_images_is_a_clear_error():
    loaded = _onnx_loaded(None)
    with pytest.raises(ValueError, match="got no images; give at least one"):
        loaded.predict_proba(torch.zeros(0, 1, 16, 16, dtype=torch.uint8))
