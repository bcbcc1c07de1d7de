"""The torch predict backend on a CPU runs the conv weights channels-last, with the same answers."""
from __future__ import annotations

import importlib.util

import pytest
import torch

import cnnkit
from cnnkit.data.normalization import Normalization
from cnnkit.export.runtime import use_backend
from cnnkit.models import Sequential
from cnnkit.run import folder
from cnnkit.run.folder import (MODEL_FILE, WEIGHTS_FILE, LoadedModel, eager_channels_last,
                               load_weights, model_metadata, save_weights, write_json)
from cnnkit.run.task_predict import predict_task_images
from cnnkit.tasks.build import task_model

SPEC = "conv(4,3,padding=same) bn relu maxpool(2) conv(6,3) relu flatten fc(3)"
CLASSES = ["cat", "dog", "eel"]


def conv_weights(model):
    return [p for p in model.parameters() if p.ndim == 4]  # (O, I, kH, kW)


def is_nhwc(weight):
    return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


@pytest.fixture
def run(tmp_path):
    torch.manual_seed(0)
    model = Sequential.from_spec(SPEC, "8x8x3").eval()
    path = tmp_path / "run"
    path.mkdir()
    save_weights(model, path / WEIGHTS_FILE)
    write_json(path / MODEL_FILE, model_metadata(model, CLASSES, Normalization((0.3,) * 3,
                                                                                (0.4,) * 3),
                                                 (3, 8, 8)))
    return path


def images(n=5, c=3, size=8):
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(1))


def test_load_on_cpu_restrides_conv_weights_and_predicts_the_same(run, monkeypatch):
    loaded = cnnkit.load(run)  # backend="torch", the default
    assert loaded.backend == "torch"
    weights = conv_weights(loaded.model)
    assert len(weights) == 2 and all(is_nhwc(w) for w in weights)
    monkeypatch.setattr(folder, "EAGER_CHANNELS_LAST", False)
    plain = cnnkit.load(run)
    assert all(w.is_contiguous() for w in conv_weights(plain.model))  # the switch off
    x = images()
    torch.testing.assert_close(loaded.predict_proba(x), plain.predict_proba(x), atol=1e-6,
                               rtol=1e-5)
    assert loaded.predict(x) == plain.predict(x)


def test_use_backend_torch_restrides_and_saving_still_writes_the_weights(run, tmp_path):
    loaded = use_backend(folder.load_run(run), "torch")
    assert all(is_nhwc(w) for w in conv_weights(loaded.model))
    save_weights(loaded.model, tmp_path / "again.safetensors")  # contiguous copies on disk
    fresh = Sequential.from_spec(SPEC, "8x8x3")
    load_weights(fresh, tmp_path / "again.safetensors")
    for a, b in zip(fresh.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_model_without_parameters_or_off_the_cpu_is_left_alone():
    empty = LoadedModel(torch.nn.Identity(), CLASSES, None, (3, 8, 8), {})
    assert eager_channels_last(empty).model.__class__ is torch.nn.Identity
    meta = LoadedModel(torch.nn.Conv2d(3, 4, 3, device="meta"), CLASSES, None, (3, 8, 8), {})
    assert eager_channels_last(meta).model.weight.is_contiguous()


def test_segmentation_masks_are_the_same_in_both_layouts(monkeypatch):
    def loaded_segmenter():
        torch.manual_seed(0)
        backbone = Sequential.from_spec("conv(8,3,padding=same) bn relu "
                                        "conv(8,3,stride=2,padding=same) bn relu", "16x16x1")
        model = task_model("segment", backbone, 3, head="fcn").eval()
        return LoadedModel(model, ["background", "a", "b"], None, (1, 16, 16), {},
                           task="segment")

    nhwc = use_backend(loaded_segmenter(), "torch")
    assert any(is_nhwc(w) for w in conv_weights(nhwc.model))
    monkeypatch.setattr(folder, "EAGER_CHANNELS_LAST", False)
    nchw = use_backend(loaded_segmenter(), "torch")
    pictures = list(images(4, 1, 16)) + [images(1, 1, 21)[0]]  # one of another size
    for a, b in zip(predict_task_images(nhwc, pictures), predict_task_images(nchw, pictures)):
        assert torch.equal(a["mask"], b["mask"])
        assert a["areas"] == pytest.approx(b["areas"])


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                    reason="onnxruntime is not installed (pip install 'cnnkit[onnx]')")
def test_a_restrided_model_still_exports_for_onnxruntime(run):
    loaded = cnnkit.load(run)  # torch first: weights channels-last
    x = images()
    expected = loaded.predict_proba(x)
    use_backend(loaded, "onnxruntime", cache_dir=run / ".cache")
    assert loaded.backend == "onnxruntime"
    torch.testing.assert_close(loaded.predict_proba(x), expected, atol=1e-5, rtol=1e-4)
