"""The short path of a prediction on onnxruntime: images prepared in NumPy
(``LoadedModel._numpy_images`` + ``normalize_numpy``, switch
``cnnkit.run.folder.PREPARE_IN_NUMPY``), single images on a one-thread session, for a classifier of the graph of pixels to probabilities
(``cnnkit.export.single_image``, switch ``SINGLE_IMAGE_SESSION``), and onnxruntime's threads
spinning inside a run only. Each must give the results of the long path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install "
                                          "'cnnkit[onnx]'); the onnxruntime backend needs it")

import cnnkit  # noqa: E402
from cnnkit.data.normalization import Normalization  # noqa: E402
from cnnkit.export import single_image  # noqa: E402
from cnnkit.export.onnx import onnx_session  # noqa: E402
from cnnkit.export.runtime import OnnxForward, OnnxTaskForward, use_backend  # noqa: E402
from cnnkit.export.single_image import (faster_alone, pixel_graph,  # noqa: E402
                                        single_image_session)
from cnnkit.run.outputs import LOG_PROBS, LOGITS, PROBS  # noqa: E402
from cnnkit.models import Sequential  # noqa: E402
from cnnkit.run import folder  # noqa: E402
from cnnkit.run.task_predict import predict_task_images  # noqa: E402
from cnnkit.train.run_folder import (MODEL_FILE, WEIGHTS_FILE, model_metadata,  # noqa: E402
                                     save_weights, write_json)

from _onnx_options import spinning_entries  # noqa: E402  tests/_onnx_options.py
from _task_runs import write_task_run  # noqa: E402  tests/_task_runs.py

SPEC = "conv(4,3,padding=same) relu maxpool(2) conv(6,3) relu flatten fc(3)"


def _run(tmp_path, normalization, name="run"):
    torch.manual_seed(0)
    run = tmp_path / name
    run.mkdir()
    model = Sequential.from_spec(SPEC, "16x16x1")
    save_weights(model, run / WEIGHTS_FILE)
    write_json(run / MODEL_FILE, model_metadata(model, ["a", "b", "c"], normalization,
                                                (1, 16, 16)))
    return run


def _pixels(n, size=16, seed=3):
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


class CountingSession:
    """A real onnxruntime session that notes the batch size of each run."""

    def __init__(self, session):
        self.session = session
        self.batches: list[int] = []

    def run(self, names, feed):
        self.batches.append(len(next(iter(feed.values()))))
        return self.session.run(names, feed)

    def __getattr__(self, name):
        return getattr(self.session, name)


def _prepare_numpy(loaded, images):
    """The NumPy steps predict_proba takes before the graph, or None where it takes PyTorch's."""
    arrays = loaded._numpy_images(images)
    return None if arrays is None else loaded.normalize_numpy(arrays)


@pytest.mark.parametrize("normalization", [None, Normalization((0.3,), (0.4,))])
def test_prepare_numpy_is_prepare_bit_for_bit(tmp_path, normalization):
    loaded = cnnkit.load(_run(tmp_path, normalization))
    pixels = _pixels(4)
    floats = pixels.float() / 255.0
    for images in (pixels, pixels.numpy(), floats, floats.numpy(), pixels[0], floats[0]):
        fast = _prepare_numpy(loaded, images)
        assert fast is not None and fast.dtype == np.float32 and fast.flags.c_contiguous
        assert torch.equal(torch.from_numpy(fast), loaded._prepare(images))


def test_prepare_numpy_leaves_what_it_cannot_do_to_the_torch_path(tmp_path, monkeypatch):
    loaded = cnnkit.load(_run(tmp_path, Normalization((0.3,), (0.4,))))
    pixels = _pixels(2)
    needs_grad = (pixels.float() / 255).requires_grad_()
    for images in (_pixels(2, 20),  # needs a resize
                   pixels.double() / 255,  # float64
                   needs_grad,  # a tensor in an autograd graph
                   pixels.tolist(),  # a nested list
                   torch.zeros(2, 3, 16, 16, dtype=torch.uint8)):  # RGB for a grey model
        assert _prepare_numpy(loaded, images) is None
    monkeypatch.setattr(folder, "PREPARE_IN_NUMPY", False)  # the switch off
    assert _prepare_numpy(loaded, pixels) is None


@pytest.mark.parametrize("normalization", [None, Normalization((0.3,), (0.4,))])
def test_predictions_prepared_in_numpy_equal_the_torch_steps(tmp_path, normalization,
                                                             monkeypatch, two_threads):
    loaded = use_backend(cnnkit.load(_run(tmp_path, normalization)), "onnxruntime")
    loaded.forward.session = counting = CountingSession(loaded.forward.session)
    loaded.forward.pixel_session = None
    torch_steps = []
    prepare = loaded._prepare
    loaded._prepare = lambda images: torch_steps.append(len(images)) or prepare(images)
    pixels = _pixels(300)
    fast = loaded.predict_proba(pixels, batch_size=128)
    one = loaded.predict_proba(pixels[7])
    assert counting.batches == [128, 128, 44, 1]  # split as batch_size says
    assert torch_steps == []  # prepared in NumPy
    monkeypatch.setattr(folder, "PREPARE_IN_NUMPY", False)
    assert torch.equal(fast, loaded.predict_proba(pixels, batch_size=128))
    assert torch.equal(one, loaded.predict_proba(pixels[7]))
    assert torch_steps == [300, 1]  # the switch off: the PyTorch steps
    torch_probs = use_backend(cnnkit.load(tmp_path / "run"), "torch").predict_proba(pixels)
    torch.testing.assert_close(fast, torch_probs, atol=1e-5, rtol=1e-4)
    # what the NumPy path does not take still predicts (resized by the PyTorch steps)
    assert loaded.predict_proba(_pixels(3, 20)).shape == (3, 3)


@pytest.mark.parametrize("normalization", [None, Normalization((0.3,), (0.4,))])
def test_the_pixel_graph_runs_single_uint8_images_only(tmp_path, two_threads, normalization):
    loaded = cnnkit.load(_run(tmp_path, normalization), backend="onnxruntime")
    forward = loaded.forward
    main = CountingSession(forward.session)
    pixels_session = CountingSession(onnx_session(
        pixel_graph(forward.path, normalization, forward.output_kind), threads=1))
    loaded.forward = OnnxForward(main, forward.path, forward.output_kind,
                                 pixel_session=pixels_session)
    pixels = _pixels(5)
    ones = torch.cat([loaded.predict_proba(p) for p in pixels])
    batch = loaded.predict_proba(pixels)
    floats = loaded.predict_proba(pixels[:1].float() / 255)
    assert pixels_session.batches == [1] * 5 and main.batches == [5, 1]  # floats: the main one
    torch.testing.assert_close(ones, batch, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ones[:1], floats, atol=1e-6, rtol=1e-5)
    torch_probs = cnnkit.load(tmp_path / "run").predict_proba(pixels)
    torch.testing.assert_close(ones, torch_probs, atol=1e-5, rtol=1e-4)
    loaded.predict_proba(pixels[0], tta=True)  # a flip to average: the usual steps
    assert pixels_session.batches == [1] * 5


@pytest.mark.parametrize("kind", [LOGITS, LOG_PROBS, PROBS])
def test_the_pixel_graph_ends_in_probabilities_for_every_output_kind(tmp_path, kind):
    from cnnkit.run.outputs import to_probabilities

    normalization = Normalization((0.3,), (0.4,))
    loaded = cnnkit.load(_run(tmp_path, normalization), backend="onnxruntime")
    path = loaded.forward.path
    session = onnx_session(pixel_graph(path, normalization, kind))
    image = _pixels(3).numpy()
    (got,) = session.run(["probabilities"], {"pixels": image})
    (logits,) = loaded.forward.session.run(["logits"],
                                           {"images": normalization.apply_numpy(image)})
    want = to_probabilities(torch.from_numpy(logits), kind).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert session.get_inputs()[0].type == "tensor(uint8)"


def test_a_task_forward_decodes_single_images_on_its_single_session(tmp_path, two_threads):
    loaded = cnnkit.load(write_task_run(tmp_path / "run", "detect"), backend="onnxruntime")
    forward = loaded.forward
    single = CountingSession(onnx_session(forward.path, threads=1))
    images = list(_pixels(3, 32))
    before = predict_task_images(loaded, images[:1])
    loaded.forward = OnnxTaskForward(forward.session, forward.path, forward.output_names,
                                     forward.network, single_session=single)
    after = predict_task_images(loaded, images[:1])
    predict_task_images(loaded, images)
    assert single.batches == [1]  # the batch of three ran on the main session
    after, before = after[0]["detections"], before[0]["detections"]
    assert before  # random weights still find boxes to compare
    assert [d["label"] for d in after] == [d["label"] for d in before]
    for a, b in zip(after, before):
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)
        assert a["box"] == pytest.approx(b["box"], abs=1e-3)


def test_single_image_session_is_measured_and_only_where_it_can_gain(tmp_path, monkeypatch,
                                                                     two_threads):
    path = cnnkit.load(_run(tmp_path, None), backend="onnxruntime").forward.path
    session = onnx_session(path, threads=2)
    single = single_image_session(path, session, budget_s=0.05)
    if single is not None:  # the measurement's call; when kept, it runs on one thread
        assert single.get_session_options().intra_op_num_threads == 1
    graph = pixel_graph(path, None)
    pixels = single_image_session(path, session, graph=graph, budget_s=0.05)
    if pixels is not None:  # the pixel graph's one-thread session
        assert pixels.get_inputs()[0].name == "pixels"
    assert single_image_session(path, onnx_session(path, threads=1)) is None  # nothing to gain
    monkeypatch.setattr(single_image, "MAX_S", 0.0)  # "a network too slow to gain"
    assert single_image_session(path, session) is None
    assert cnnkit.load(_run(tmp_path, None, "slow"),
                       backend="onnxruntime").forward.pixel_session is None
    monkeypatch.undo()
    monkeypatch.setattr(single_image, "SINGLE_IMAGE_SESSION", False)  # the switch off
    assert cnnkit.load(_run(tmp_path, None, "again"),
                       backend="onnxruntime").forward.pixel_session is None


def test_a_pixel_graph_that_differs_from_its_network_is_not_used(tmp_path, monkeypatch,
                                                                 two_threads, caplog):
    from cnnkit.export import runtime

    # A graph built with another normalisation than the run's: the check on a random image
    # must catch it and leave single images to the usual steps.
    wrong = single_image.pixel_graph
    monkeypatch.setattr(single_image, "pixel_graph", lambda path, normalization, kind: wrong(
        path, Normalization((0.9,), (0.1,)), kind))
    monkeypatch.setattr(single_image, "faster_alone", lambda *a, **k: True)  # "measured faster"
    loaded = cnnkit.load(_run(tmp_path, Normalization((0.3,), (0.4,))))
    with caplog.at_level("WARNING", logger=runtime.__name__):
        use_backend(loaded, "onnxruntime")
    assert loaded.forward.pixel_session is None
    assert "differs from its network" in caplog.text


def test_faster_alone_compares_medians_with_the_gain():
    assert faster_alone([1.0, 1.0, 9.0], [0.5, 0.5, 0.1])
    assert not faster_alone([1.0, 1.0, 1.0], [0.95, 0.95, 0.95])  # 0.95x: not worth a session
    assert faster_alone([1.0, 1.0, 1.0], [0.95, 0.95, 0.95], gain=1.0)
    assert not faster_alone([0.1, 1.0, 1.0], [1.0, 1.0, 0.1])  # one fast run is not the median


def test_onnx_sessions_spin_only_inside_a_run_by_default(tmp_path):
    from cnnkit.export import onnx as onnx_module

    path = cnnkit.load(_run(tmp_path, None), backend="onnxruntime").forward.path

    entries = spinning_entries

    assert onnx_module.SPINNING == "run"
    got = {mode: entries(onnx_session(path, spinning=mode)) for mode in (None, "run", "never",
                                                                        "always", True, False)}
    assert got[None] == got["run"] == {"session.force_spinning_stop": "1"}
    assert got["never"] == got[False] == {"session.intra_op.allow_spinning": "0"}
    assert got["always"] == got[True] == {}  # onnxruntime's own default
    with pytest.raises(ValueError, match="spinning must be one of never, run, always"):
        onnx_session(path, spinning="sometimes")
