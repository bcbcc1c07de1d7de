"""The server's predict backend: onnxruntime answers like torch; the choice shows in /model."""
import numpy as np
import pytest
from fastapi.testclient import TestClient

import cnnkit
from cnnkit.export.runtime import CACHE_DIR
from cnnkit.serve import ServeConfig, create_app

from _onnx_options import spinning_entries  # tests/_onnx_options.py

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install "
                                          "'cnnkit[onnx]'); the onnxruntime backend needs it")


def _predict_all(client, images) -> list[dict]:
    response = client.post("/predict", json={"images": [{"pixels": im.tolist()} for im in images]},
                           params={"top_k": 10})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_onnxruntime_and_torch_servers_answer_alike(run_dir):
    images = [np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)
              for seed in range(4)]
    answers = {}
    for backend in ("torch", "onnxruntime"):
        with TestClient(create_app(run_dir, ServeConfig(backend=backend))) as client:
            assert client.get("/model").json()["backend"] == backend
            answers[backend] = _predict_all(client, images)
    assert (run_dir / CACHE_DIR).is_dir()  # the run folder's export, reused by later servers
    for fast, eager in zip(answers["onnxruntime"], answers["torch"]):
        assert [sorted(p) for p in fast["predictions"]] == [["class", "probability"]] * 10
        fast_probs = {p["class"]: p["probability"] for p in fast["predictions"]}
        eager_probs = {p["class"]: p["probability"] for p in eager["predictions"]}
        assert fast_probs.keys() == eager_probs.keys()
        np.testing.assert_allclose([fast_probs[c] for c in sorted(eager_probs)],
                                   [eager_probs[c] for c in sorted(eager_probs)],
                                   rtol=1e-4, atol=1e-6)


def test_serving_a_loaded_model_leaves_the_callers_backend(run_dir):
    loaded = cnnkit.load(run_dir)
    app = create_app(loaded, ServeConfig(backend="onnxruntime"))
    assert app.state.service.loaded.backend == "onnxruntime"
    assert loaded.backend == "torch" and loaded.forward is None


def test_bad_backend_is_a_value_error():
    with pytest.raises(ValueError, match="backend must be one of auto, torch, onnxruntime, "
                                         "got 'gpu'"):
        ServeConfig(backend="gpu")


def test_the_servers_onnxruntime_threads_never_spin_unless_configured(run_dir):
    # Spinning inside each run took the cores from the event loop under load (bench/serve_load).
    app = create_app(run_dir, ServeConfig(backend="onnxruntime"))
    forward = app.state.service.loaded.forward
    assert spinning_entries(forward.session) == {"session.intra_op.allow_spinning": "0"}
    app = create_app(run_dir, ServeConfig(backend="onnxruntime", spinning="run"))
    assert spinning_entries(app.state.service.loaded.forward.session) == {
        "session.force_spinning_stop": "1"}
    # cnnkit.load (what cnnkit predict uses) spins inside a run by default
    predictor = cnnkit.load(run_dir, backend="onnxruntime")
    assert spinning_entries(predictor.forward.session) == {"session.force_spinning_stop": "1"}
    with pytest.raises(ValueError, match="spinning must be one of never, run, always, got 'x'"):
        ServeConfig(spinning="x")
