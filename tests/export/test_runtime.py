"""Predict backends: onnxruntime gives torch's predictions, is cached per weights, falls back."""
from __future__ import annotations

import logging
import sys

import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install "
                                          "'cnnkit[onnx]'); the onnxruntime backend needs it")

import cnnkit  # noqa: E402
from cnnkit.data.normalization import Normalization  # noqa: E402
from cnnkit.export.errors import ExportError  # noqa: E402
from cnnkit.export.runtime import CACHE_DIR, OnnxForward, use_backend  # noqa: E402
from cnnkit.models import Sequential, create  # noqa: E402
from cnnkit.train.run_folder import (MODEL_FILE, WEIGHTS_FILE, LoadedModel,  # noqa: E402
                                     model_metadata, save_weights, write_json)

SPEC = "conv(4,3,padding=same) relu maxpool(2) conv(6,3) relu flatten fc(3)"
BN_SPEC = "conv(4,3,padding=same) bn relu maxpool(2) conv(6,3) bn relu flatten dropout(0.5) fc(3)"
CLASSES = ["cat", "dog", "eel"]


def write_run(folder, model, input_shape, normalization):
    folder.mkdir(parents=True)
    save_weights(model, folder / WEIGHTS_FILE)
    write_json(folder / MODEL_FILE, model_metadata(model, CLASSES, normalization, input_shape))
    return folder


def bn_model() -> nn.Module:
    """A spec model whose BatchNorm layers have non-trivial running statistics."""
    model = Sequential.from_spec(BN_SPEC, "8x8x3")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model


@pytest.fixture
def spec_run(tmp_path):
    return write_run(tmp_path / "spec", Sequential.from_spec(SPEC, "8x8x1"), (1, 8, 8),
                     Normalization((0.3,), (0.4,)))


def cache_files(run):
    return sorted(p.name for p in (run / CACHE_DIR).glob("*")) if (run / CACHE_DIR).exists() \
        else []


@pytest.mark.parametrize("name", ["spec", "bn spec", "lenet5 (zoo)"])
def test_onnxruntime_predictions_equal_torch(tmp_path, name):
    model, shape = {
        "spec": (lambda: Sequential.from_spec(SPEC, "8x8x1"), (1, 8, 8)),
        "bn spec": (bn_model, (3, 8, 8)),
        "lenet5 (zoo)": (lambda: create("lenet5", num_classes=3, in_channels=1,
                                        input_size=(28, 28)), (1, 28, 28)),
    }[name]
    norm = Normalization((0.5,) * shape[0], (0.25,) * shape[0])
    run = write_run(tmp_path / "run", model(), shape, norm)
    eager = cnnkit.load(run)
    fast = cnnkit.load(run, backend="onnxruntime")
    assert (eager.backend, fast.backend) == ("torch", "onnxruntime")
    assert isinstance(fast.forward, OnnxForward) and eager.forward is None
    pixels = torch.randint(0, 256, (11, *shape), dtype=torch.uint8)
    for tta in (False, True):
        torch.testing.assert_close(fast.predict_proba(pixels, tta=tta, batch_size=4),
                                   eager.predict_proba(pixels, tta=tta, batch_size=4),
                                   rtol=1e-4, atol=1e-5)
    assert fast.predict(pixels) == eager.predict(pixels)
    top_fast, top_eager = fast.predict_top(pixels, k=2), eager.predict_top(pixels, k=2)
    assert [[c for c, _ in row] for row in top_fast] == [[c for c, _ in row] for row in top_eager]
    assert all(type(c) is str and type(p) is float for row in top_fast for c, p in row)
    # Float 0-1 pixels and images of another size go through the same preparation.
    floats = torch.rand(2, shape[0], 12, 10)
    torch.testing.assert_close(fast.predict_proba(floats), eager.predict_proba(floats),
                               rtol=1e-4, atol=1e-5)


def test_export_is_cached_per_weights_and_reused(spec_run, caplog):
    cnnkit.load(spec_run, backend="auto")
    (entry,) = (spec_run / CACHE_DIR).glob("onnx-*.onnx")
    assert len(entry.stem) == len("onnx-") + 64
    stamp = entry.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="cnnkit.export.runtime"):
        again = cnnkit.load(spec_run, backend="auto")
    assert again.backend == "onnxruntime" and entry.stat().st_mtime_ns == stamp
    assert "reusing" in caplog.text and "exported" not in caplog.text


def test_new_weights_get_a_new_entry_and_user_files_are_untouched(spec_run):
    (spec_run / "model.onnx").write_bytes(b"the user's own export")
    (spec_run / CACHE_DIR).mkdir()
    (spec_run / CACHE_DIR / "notes.txt").write_text("mine")
    cnnkit.load(spec_run, backend="auto")
    (old,) = (spec_run / CACHE_DIR).glob("onnx-*.onnx")
    model = Sequential.from_spec(SPEC, "8x8x1")  # new random weights, same architecture
    save_weights(model, spec_run / WEIGHTS_FILE)
    fast = cnnkit.load(spec_run, backend="auto")
    (new,) = (spec_run / CACHE_DIR).glob("onnx-*.onnx")
    assert new != old and not old.exists()
    assert (spec_run / "model.onnx").read_bytes() == b"the user's own export"
    assert (spec_run / CACHE_DIR / "notes.txt").read_text() == "mine"
    pixels = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    torch.testing.assert_close(fast.predict_proba(pixels), cnnkit.load(spec_run).predict_proba(
        pixels), rtol=1e-4, atol=1e-5)


def test_a_damaged_cache_entry_is_exported_again(spec_run, caplog):
    cnnkit.load(spec_run, backend="auto")
    (entry,) = (spec_run / CACHE_DIR).glob("onnx-*.onnx")
    entry.write_bytes(b"not an onnx file")
    with caplog.at_level(logging.WARNING, logger="cnnkit.export.runtime"):
        fast = cnnkit.load(spec_run, backend="auto")
    assert fast.backend == "onnxruntime" and "exporting again" in caplog.text
    assert entry.read_bytes()[:4] != b"not "
    pixels = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    torch.testing.assert_close(fast.predict_proba(pixels), cnnkit.load(spec_run).predict_proba(
        pixels), rtol=1e-4, atol=1e-5)


def test_unwritable_cache_uses_a_temporary_file(spec_run):
    (spec_run / CACHE_DIR).write_text("a file where the cache folder would go")
    fast = cnnkit.load(spec_run, backend="auto")
    assert fast.backend == "onnxruntime" and fast.forward.path == "(temporary file)"
    assert (spec_run / CACHE_DIR).read_text() == "a file where the cache folder would go"


def test_torch_backend_writes_nothing(spec_run):
    loaded = cnnkit.load(spec_run, backend="torch")
    assert loaded.backend == "torch" and loaded.forward is None
    assert cache_files(spec_run) == []


def test_loaded_model_without_run_folder_is_not_cached(spec_run):
    loaded = use_backend(cnnkit.load(spec_run), "onnxruntime")
    assert loaded.backend == "onnxruntime" and loaded.forward.path == "(temporary file)"
    assert cache_files(spec_run) == []
    assert use_backend(loaded, "torch").forward is None


def test_bad_backend_name_is_rejected(spec_run):
    with pytest.raises(ValueError, match=r"backend must be one of auto, torch, onnxruntime, "
                                         r"got 'ort'"):
        cnnkit.load(spec_run, backend="ort")


@pytest.mark.parametrize("missing", ["onnxruntime", "onnxscript"])
def test_auto_falls_back_to_torch_when_an_onnx_package_is_missing(spec_run, monkeypatch, caplog,
                                                                  missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes the import fail, as if not installed
    with caplog.at_level(logging.INFO, logger="cnnkit.export.runtime"):
        loaded = cnnkit.load(spec_run, backend="auto")
    assert loaded.backend == "torch" and loaded.forward is None
    assert f"{missing} not installed" in caplog.text and "cnnkit[onnx]" in caplog.text
    with pytest.raises(ValueError, match=f"backend='onnxruntime' cannot be used: {missing} not"):
        cnnkit.load(spec_run, backend="onnxruntime")


class NoisyNet(nn.Module):
    """Adds fresh noise even in eval mode: onnxruntime's noise differs, so verification fails."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        x = x.flatten(1)  # (N, 1, 4, 4) -> (N, 16)
        return self.fc(x) + torch.randn(x.shape[0], 3)


def test_auto_falls_back_when_the_export_does_not_verify(caplog):
    loaded = LoadedModel(NoisyNet().eval(), CLASSES, None, (1, 4, 4), {})
    with caplog.at_level(logging.WARNING, logger="cnnkit.export.runtime"):
        use_backend(loaded, "auto")
    assert loaded.backend == "torch" and "differ from PyTorch's" in caplog.text
    with pytest.raises(ExportError, match="differ from PyTorch's"):
        use_backend(loaded, "onnxruntime")


def test_auto_without_export_uses_only_a_cached_file(spec_run, caplog):
    with caplog.at_level(logging.INFO, logger="cnnkit.export.runtime"):
        small = use_backend(cnnkit.load(spec_run), "auto", cache_dir=spec_run / CACHE_DIR,
                            export=False)
    assert small.backend == "torch" and cache_files(spec_run) == []
    assert "too small to pay" in caplog.text
    cnnkit.load(spec_run, backend="auto")  # exports and caches
    cached = use_backend(cnnkit.load(spec_run), "auto", cache_dir=spec_run / CACHE_DIR,
                         export=False)
    assert cached.backend == "onnxruntime"


def test_choosing_again_after_the_weights_changed_follows_them(spec_run):
    loaded = cnnkit.load(spec_run, backend="onnxruntime")
    with torch.no_grad():
        loaded.model[0].weight.mul_(-2.0)
    use_backend(loaded, "auto", cache_dir=spec_run / CACHE_DIR)
    pixels = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    expected = use_backend(cnnkit.load(spec_run), "torch")
    expected.model.load_state_dict(loaded.model.state_dict())
    torch.testing.assert_close(loaded.predict_proba(pixels), expected.predict_proba(pixels),
                               rtol=1e-4, atol=1e-5)
    assert len(cache_files(spec_run)) == 1  # the entry of the old weights was replaced
