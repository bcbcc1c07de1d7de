"""Run folders, an in-process client and a live uvicorn server for the serve tests."""
from __future__ import annotations

import socket
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from cnnkit.data.normalization import Normalization  # noqa: E402
from cnnkit.models import Sequential  # noqa: E402
from cnnkit.serve import ServeConfig, create_app, server_options  # noqa: E402
from cnnkit.train.run_folder import (MODEL_FILE, WEIGHTS_FILE, model_metadata,  # noqa: E402
                                     save_weights, write_json)

SPEC = "conv(4,3,padding=same) relu maxpool(2) conv(6,3) relu flatten fc(10)"


def write_run(folder, spec=SPEC, input_hwc="8x8x1", normalization=Normalization((0.3,), (0.4,))):
    """A run folder with random weights: model.json + weights.safetensors."""
    folder.mkdir(parents=True)
    model = Sequential.from_spec(spec, input_hwc)
    save_weights(model, folder / WEIGHTS_FILE)
    write_json(folder / MODEL_FILE, model_metadata(model, [str(k) for k in range(10)],
                                                   normalization, model.input_shape))
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("serve") / "run")


@pytest.fixture(scope="module")
def client(run_dir):
    with TestClient(create_app(run_dir)) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a background thread, until :meth:`stop`."""

    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options = server_options(app.state.service.config)  # what cnnkit serve runs with
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", **options))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 30.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.01)  # polling for start-up, not timing anything
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def make_live_server():
    servers = []

    def start(run, config: ServeConfig | None = None) -> LiveServer:
        server = LiveServer(create_app(run, config)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
