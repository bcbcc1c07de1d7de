import numpy as np
import onnxruntime as ort
import pytest
import torch

from cnnkit.tasks.build import build_task_model, default_for

CASES = [("localize", 10), ("segment", 11), ("detect", 10)]


def outputs(model, x):
    out = model(x)
    return [out] if isinstance(out, torch.Tensor) else list(out.values())  # ONNX flattens a dict in order


@pytest.mark.parametrize("task,classes", CASES)
def test_architecture_round_trip(task, classes):
    torch.manual_seed(0)
    model = default_for(task, (32, 32, 1), classes).eval()
    again = build_task_model(model.architecture).eval()
    again.load_state_dict(model.state_dict())
    x = torch.randn(2, 1, 32, 32)
    for a, b in zip(outputs(model, x), outputs(again, x)):
        assert torch.allclose(a, b)


@pytest.mark.parametrize("task,classes", CASES)
def test_onnx_export_matches_onnxruntime(task, classes, tmp_path):
    torch.manual_seed(0)
    model = default_for(task, (32, 32, 1), classes).eval()
    x = torch.randn(2, 1, 32, 32)
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["x"], dynamo=False,
                      dynamic_axes={"x": {0: "batch"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x3 = torch.randn(3, 1, 32, 32)
    got = session.run(None, {"x": x3.numpy()})
    with torch.no_grad():
        want = outputs(model, x3)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-4)


def test_unknown_task():
    with pytest.raises(ValueError, match="task must be one of"):
        default_for("pose", (32, 32, 1), 3)
    with pytest.raises(ValueError, match="type='task'"):
        build_task_model({"type": "zoo"})
