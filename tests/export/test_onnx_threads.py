"""PyTorch's steps around an onnxruntime prediction run on one thread (cnnkit.run.threads)."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install "
                                          "'cnnkit[onnx]'); the onnxruntime backend needs it")

import cnnkit  # noqa: E402
from cnnkit.data.normalization import Normalization  # noqa: E402
from cnnkit.export.runtime import OnnxForward, use_backend  # noqa: E402
from cnnkit.models import Sequential  # noqa: E402
from cnnkit.run import threads  # noqa: E402
from cnnkit.run.task_predict import predict_task_images  # noqa: E402
from cnnkit.train.run_folder import (MODEL_FILE, WEIGHTS_FILE, model_metadata,  # noqa: E402
                                     save_weights, write_json)

from _task_runs import write_task_run  # noqa: E402  tests/_task_runs.py

SPEC = "conv(4,3,padding=same) relu maxpool(2) conv(6,3) relu flatten fc(3)"


class CountingForward(OnnxForward):
    """The real onnxruntime forward, noting PyTorch's thread count at each call."""

    def __init__(self, inner: OnnxForward):
        super().__init__(inner.session, inner.path, inner.output_kind)
        self.threads: list[int] = []

    def numpy_forward(self, pixels):  # the NumPy path calls it directly, __call__ through it
        self.threads.append(torch.get_num_threads())
        return super().numpy_forward(pixels)


@pytest.fixture
def onnx_classifier(tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "run"
    run.mkdir()
    model = Sequential.from_spec(SPEC, "16x16x1")
    save_weights(model, run / WEIGHTS_FILE)
    write_json(run / MODEL_FILE, model_metadata(model, ["a", "b", "c"],
                                                Normalization((0.3,), (0.4,)), (1, 16, 16)))
    loaded = use_backend(cnnkit.load(run), "onnxruntime")
    loaded.forward = CountingForward(loaded.forward)
    return loaded


def _pixels(n=300, size=16):
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(3))


def test_one_torch_thread_during_onnx_predictions_and_restored_after(onnx_classifier,
                                                                      two_threads):
    pixels = _pixels()
    probs = onnx_classifier.predict_proba(pixels, batch_size=128)
    assert onnx_classifier.forward.threads == [1, 1, 1]  # 300 images in batches of 128
    assert torch.get_num_threads() == 2
    threads.ONNX_TORCH_THREADS = None
    try:
        again = onnx_classifier.predict_proba(pixels, batch_size=128)
    finally:
        threads.ONNX_TORCH_THREADS = 1
    assert onnx_classifier.forward.threads[3:] == [2, 2, 2]  # the switch off
    assert torch.equal(probs, again)  # the same numbers either way
    # and the same as PyTorch itself
    torch_probs = use_backend(onnx_classifier, "torch").predict_proba(pixels)
    torch.testing.assert_close(probs, torch_probs, atol=1e-5, rtol=1e-4)


def test_outputs_and_a_failing_call_restore_the_thread_count(onnx_classifier, two_threads):
    onnx_classifier.outputs(_pixels(10))
    assert onnx_classifier.forward.threads == [1]
    with pytest.raises(ValueError, match="images must have shape"):
        onnx_classifier.predict_proba(torch.zeros(2, 5, 16, 16, dtype=torch.uint8))
    assert torch.get_num_threads() == 2


def test_torch_backend_keeps_its_threads(tmp_path, two_threads):
    seen = []
    model = Sequential.from_spec(SPEC, "16x16x1")
    run = tmp_path / "run"
    run.mkdir()
    save_weights(model, run / WEIGHTS_FILE)
    write_json(run / MODEL_FILE, model_metadata(model, ["a", "b", "c"], None, (1, 16, 16)))
    loaded = cnnkit.load(run, backend="torch")
    loaded.model.register_forward_pre_hook(lambda m, i: seen.append(torch.get_num_threads()))
    loaded.predict_proba(_pixels(4))
    assert seen == [2]


def test_task_predictions_decode_beside_one_thread(tmp_path, two_threads):
    run = write_task_run(tmp_path / "run", "detect")
    loaded = use_backend(cnnkit.load(run), "onnxruntime")
    seen = []
    decoded = loaded.forward.decoded

    def counting(x, names=None):
        seen.append(torch.get_num_threads())
        return decoded(x, names)

    loaded.forward.decoded = counting
    images = list(_pixels(5, 32))
    found = predict_task_images(loaded, images)
    threads.ONNX_TORCH_THREADS = None
    try:
        again = predict_task_images(loaded, images)
    finally:
        threads.ONNX_TORCH_THREADS = 1
    assert seen == [1, 2]
    assert found == again
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("task", ["segment", "detect"])
def test_the_post_step_runs_beside_one_thread_too(tmp_path, two_threads, task, monkeypatch):
    # The masks' and the NMS's torch ops on every thread left PyTorch's OpenMP workers
    # spinning into the next call's graph: the post-step keeps the one thread as well.
    from cnnkit.run import task_predict

    run = write_task_run(tmp_path / "run", task)
    loaded = use_backend(cnnkit.load(run), "onnxruntime")
    seen = []
    answers = task_predict._answers

    def counting(*args):
        seen.append(torch.get_num_threads())
        return answers(*args)

    monkeypatch.setattr(task_predict, "_answers", counting)
    images = [*_pixels(2, 32), *_pixels(1, 40)]  # one image resized back from the model's size
    found = predict_task_images(loaded, images)
    assert torch.get_num_threads() == 2
    monkeypatch.setattr(threads, "ONNX_TORCH_THREADS", None)  # the switch off
    again = predict_task_images(loaded, images)
    assert seen == [1, 2]
    assert len(found) == 3 and torch.get_num_threads() == 2
    for a, b in zip(found, again):  # the same answers either way
        if task == "segment":
            assert torch.equal(a["mask"], b["mask"]) and a["areas"] == b["areas"]
        else:
            assert a == b
