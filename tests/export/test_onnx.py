"""ONNX export: self-contained (normalisation folded in), dynamic batch, metadata, verified."""
import numpy as np
import onnx
import pytest
import torch

import cnnkit
from cnnkit.export import ExportError, export_onnx, onnx_session, read_onnx_metadata, verify_onnx
from cnnkit.export.verify import check_close


@pytest.fixture(scope="module")
def onnx_file(run_dir, tmp_path_factory):
    return export_onnx(run_dir, tmp_path_factory.mktemp("onnx") / "model.onnx")


def test_onnx_matches_load_run_probabilities_on_uint8_pixels(run_dir, onnx_file):
    loaded = cnnkit.load(run_dir)
    pixels = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    (logits,) = onnx_session(onnx_file).run(["logits"], {"images": pixels.numpy()})
    probs = torch.softmax(torch.from_numpy(logits), dim=1)
    torch.testing.assert_close(probs, loaded.predict_proba(pixels), rtol=1e-4, atol=1e-5)


def test_onnx_batch_axis_is_dynamic_and_input_is_uint8(onnx_file):
    graph = onnx.load(str(onnx_file)).graph
    (inp,) = graph.input
    assert inp.name == "images"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 8, 8]
    session = onnx_session(onnx_file)
    for n in (1, 17):
        (out,) = session.run(None, {"images": np.zeros((n, 1, 8, 8), np.uint8)})
        assert out.shape == (n, 3)


def test_onnx_metadata_has_classes_shape_and_normalisation(onnx_file):
    meta = read_onnx_metadata(onnx_file)
    assert meta["class_names"] == ["cat", "dog", "eel"]
    assert meta["input_shape"] == [1, 8, 8] and meta["input_dtype"] == "uint8"
    assert meta["normalization_folded"] is True
    assert meta["normalization"] == {"mean": [0.3], "std": [0.4]}


def test_unfolded_export_takes_normalised_floats(run_dir, tmp_path):
    loaded = cnnkit.load(run_dir)
    path = export_onnx(loaded, tmp_path / "bare.onnx", fold_normalization=False)
    x = torch.randn(4, 1, 8, 8)
    (out,) = onnx_session(path).run(None, {"images": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, loaded.model(x).numpy(), rtol=1e-4, atol=1e-5)
    assert read_onnx_metadata(path)["normalization_folded"] is False


def test_float_input_dtype_takes_zero_to_one_pixels(run_dir, tmp_path):
    path = export_onnx(run_dir, tmp_path / "f.onnx", input_dtype="float32")
    pixels = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    (from_float,) = onnx_session(path).run(None, {"images": (pixels.float() / 255).numpy()})
    expected = cnnkit.load(run_dir).predict_proba(pixels)
    torch.testing.assert_close(torch.softmax(torch.from_numpy(from_float), 1), expected,
                               rtol=1e-4, atol=1e-5)


def test_verify_fails_loudly_when_the_weights_changed(run_dir, onnx_file):
    tampered = cnnkit.load(run_dir)
    with torch.no_grad():
        tampered.model[0].weight.add_(0.5)
    with pytest.raises(ExportError, match=r"differ from PyTorch's by up to \d"):
        verify_onnx(onnx_file, tampered)


def test_verify_rejects_a_file_that_is_not_onnx(run_dir, tmp_path):
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ExportError, match="onnxruntime cannot load"):
        verify_onnx(bogus, run_dir)


def test_check_close_reports_shape_and_value_mismatches():
    assert check_close(np.ones(3), np.ones(3) + 1e-6, what="x") == pytest.approx(1e-6)
    with pytest.raises(ExportError, match="shape"):
        check_close(np.ones(3), np.ones(4), what="x")
    with pytest.raises(ExportError, match="up to 0.5"):
        check_close(np.ones(3), np.array([1.0, 1.5, 1.0]), what="x")


def test_bad_arguments_name_the_argument(run_dir, tmp_path):
    with pytest.raises(ValueError, match="input_dtype must be one of"):
        export_onnx(run_dir, tmp_path / "x.onnx", input_dtype="int8")
    with pytest.raises(TypeError, match="run must be a run folder path"):
        export_onnx(42, tmp_path / "x.onnx")
    with pytest.raises(cnnkit.errors.CheckpointError, match="does not exist"):
        export_onnx(tmp_path / "nope", tmp_path / "x.onnx")
