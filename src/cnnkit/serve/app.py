"""The prediction server: a FastAPI app around one trained run.

Endpoints (the OpenAPI description is at ``/openapi.json``, browsable at ``/docs``):

* ``POST /predict``: one image or a batch (multipart ``file`` fields, JSON, or a raw
  ``image/*`` body; see :mod:`cnnkit.serve.decode`) -> the ``top_k`` classes with
  probabilities. Requests from all clients are grouped into batched forward passes
  (:mod:`cnnkit.serve.batching`). For a localise, segment or detect run the uploads keep their
  own size and the answer is in their pixels (:func:`task_response`):
  ``{"task": "localize", "label", "probability", "box"}``,
  ``{"task": "segment", "mask_png", "overlay_png", "areas"}`` (base64 PNGs: class indices as
  grey levels, and the class colours over the image) or
  ``{"task": "detect", "detections": [{"label", "score", "box"}, ...]}``; boxes are
  ``[x_min, y_min, x_max, y_max]`` pixels, max exclusive.
* ``POST /features``: one image -> every class probability, the model's input as it saw it,
  and each layer's feature maps as small PNGs (for the web page). These requests go through a
  second batcher on a private copy of the model (feature maps need hooks, and ``/predict`` may
  run onnxruntime): one pass at a time, shared by whatever is queued when it starts.
  Classifiers only (400 ``not_a_classifier`` for a task run).
* ``GET /health``, ``GET /model`` (architecture, classes, input size, layer summary),
  ``GET /`` the web page (plain HTML/JS from ``static/``, no network access needed).

Every bad request gets a 4xx JSON body ``{"error": code, "detail": message}``; the body size is
checked before it is read (413), a body still arriving ``read_timeout_s`` after the request's
headers gets 408 (a client trickling bytes holds nothing for long), image headers are checked
before decoding, and a request that waits longer than the batch timeout gets 504 (503 when the
queue is full). :func:`server_options` gives the uvicorn settings that go with a config.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import logging
from http import HTTPStatus
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from cnnkit._checks import check_positive_int, format_shape_hwc
from cnnkit.export.onnx import SPINNING_MODES
from cnnkit.export.runtime import CACHE_DIR, check_backend, use_backend
from cnnkit.export.wrapper import resolve_loaded
from cnnkit.inspect.summary import summary
from cnnkit.run.task_predict import predict_task_images
from cnnkit.serve.batching import BatchConfig, BatchTimeout, DynamicBatcher, QueueFull
from cnnkit.serve.decode import (RequestError, ServeLimits, decode_image_bytes,
                                 decode_json_body)
from cnnkit.serve.features import (LayerMaps, batch_feature_maps, encode_layers,
                                   image_to_png_base64)
from cnnkit.serve.limits import (BodyLimitMiddleware, BodyReadTimeout, BodyTooLarge,
                                 ReadDeadlineMiddleware)
from cnnkit.viz.overlay import overlay_mask, png_bytes

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
_REQUEST_BODY_DOC = {
    "description": "One image: a multipart upload (field `file`; repeat it for a batch), a raw "
                   "image body (`Content-Type: image/png`, ...), or JSON `{\"image\": base64}` / "
                   "`{\"pixels\": [[...]]}` (0-255, (H, W), (C, H, W) or (H, W, C)); a batch: "
                   "JSON `{\"images\": [...]}`.",
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
        "application/json": {"schema": {"type": "object", "properties": {
            "image": {"type": "string", "description": "base64 image file or data: URL"},
            "pixels": {"type": "array", "items": {}},
            "images": {"type": "array", "items": {"type": "object"}}}}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
    },
}
_ERRORS_DOC = {status: {"description": text, "content": {"application/json": {"example": {
    "error": code, "detail": "what was wrong and how to fix it"}}}}
    for status, code, text in [
        (400, "not_an_image", "bad input (not an image, bad JSON, empty body)"),
        (408, "read_timeout", "the body did not arrive within the read timeout"),
        (413, "too_large", "body, image dimensions or batch over the limit"),
        (415, "unsupported_media_type", "a content type other than multipart, JSON or image/*"),
        (422, "wrong_pixel_shape", "truncated image or wrong pixel array"),
        (503, "overloaded", "too many requests waiting"),
        (504, "timeout", "no prediction within the timeout")]}


@dataclass(frozen=True)
class ServeConfig:
    """Everything the server can be tuned with; the defaults suit a laptop.

    Args:
        limits: request size limits (:class:`~cnnkit.serve.decode.ServeLimits`).
        batch: dynamic batching (:class:`~cnnkit.serve.batching.BatchConfig`).
        top_k: classes returned by ``/predict`` unless the request asks for another number.
        max_feature_channels: channels per layer sent by ``/features``.
        max_feature_layers: layers sent by ``/features`` (the first ones).
        feature_max_batch: most images per ``/features`` forward pass (the batcher's other
            settings are ``batch``'s); a pass keeps ``max_feature_channels`` channels of
            ``max_feature_layers`` layers per image, so memory grows with this number.
        feature_max_wait_ms: how long a ``/features`` image waits for company (ms). 0: a pass
            takes whatever is queued when it starts, so batches form only under load. Measured
            (2 CPU cores, 16 concurrent clients): batching is no throughput win for
            ``/features``, because encoding ~80 PNGs per image costs ~5x the forward pass, and
            waiting only adds latency. The batcher is there for safety: one pass at a time on
            the hooked model with waiting requests parked in the event loop (not in worker
            threads blocked on a lock, which would tie up the pool that decodes images), a bounded
            queue (503) and a timeout (504).
        read_timeout_s: longest time a request body may take to arrive, counted from the end
            of its headers (s); then HTTP 408 and the connection is closed. Bounds how long a
            client sending very slowly (slowloris) holds a connection. CLI ``--read-timeout``.
        backend: what runs ``/predict``'s forward passes: ``"auto"`` (onnxruntime where it is
            installed and the model exports, else torch), ``"torch"`` or ``"onnxruntime"``;
            see :mod:`cnnkit.export.runtime`. ``/features`` always runs PyTorch (it hooks
            every layer).
        spinning: how onnxruntime's idle threads wait for work
            (:func:`cnnkit.export.onnx.onnx_session`): ``"never"`` (the default here) leaves
            the cores to the event loop between and inside runs. Measured (ResNet-18, 32
            clients, 2 CPU cores, bench/serve_load.py): ``"run"`` (the default of ``cnnkit
            predict``, faster for images one after another) served as many requests/s, within
            the noise (55 vs 60 in one run, 65 vs 62 in another), ``"always"`` 0.7x PyTorch's.
    """

    limits: ServeLimits = field(default_factory=ServeLimits)
    batch: BatchConfig = field(default_factory=BatchConfig)
    top_k: int = 5
    max_feature_channels: int = 8
    max_feature_layers: int = 32
    feature_max_batch: int = 8
    feature_max_wait_ms: float = 0.0
    read_timeout_s: float = 10.0
    backend: str = "auto"
    spinning: str = "never"

    def __post_init__(self) -> None:
        for name in ("top_k", "max_feature_channels", "max_feature_layers", "feature_max_batch"):
            check_positive_int(getattr(self, name), name)
        if not self.feature_max_wait_ms >= 0:
            raise ValueError(f"feature_max_wait_ms must be >= 0 (milliseconds), got "
                             f"{self.feature_max_wait_ms!r}")
        if not self.read_timeout_s > 0:
            raise ValueError(f"read_timeout_s must be > 0 (seconds), got {self.read_timeout_s!r}")
        check_backend(self.backend)
        if self.spinning not in SPINNING_MODES:
            raise ValueError(f"spinning must be one of {', '.join(SPINNING_MODES)}, got "
                             f"{self.spinning!r}; 'never' suits a server")


def _b64_png(array: np.ndarray) -> str:
    return base64.b64encode(png_bytes(array)).decode("ascii")


def task_response(task: str, image: np.ndarray, result: dict, num_classes: int) -> dict:
    """The ``/predict`` JSON of one image of a task run, from its ``predict_task_images`` entry.

    Args:
        task: "localize", "segment" or "detect".
        image: the uploaded image, uint8 (C, H, W) at its own size.
        result: what :func:`cnnkit.run.task_predict.predict_task_images` gave for it.
        num_classes: K (the segment palette).

    Shape:
        segment: ``mask_png`` is a grey (H, W) PNG whose values are class indices,
        ``overlay_png`` an RGB (H, W) PNG; the image's own H and W.

    Example:
        >>> task_response("localize", image, {"label": "3", "probability": 0.9,
        ...                                   "box": [1, 2, 10, 12]}, 10)  # doctest: +SKIP
        {'task': 'localize', 'label': '3', 'probability': 0.9, 'box': [1, 2, 10, 12]}
    """
    if task == "segment":
        mask = result["mask"].numpy()  # (H, W) uint8 class indices
        return {"task": task, "mask_png": _b64_png(mask),
                "overlay_png": _b64_png(overlay_mask(image, mask, num_classes)),
                "areas": result["areas"]}
    return {"task": task, **result}


def _error(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


def server_options(config: ServeConfig) -> dict:
    """uvicorn settings to run :func:`create_app` with (``uvicorn.run(app, **options)``).

    * ``timeout_keep_alive=5``: an idle kept-alive connection is closed after 5 s.
    * ``timeout_graceful_shutdown``: on Ctrl+C, requests in flight get as long as a request may
      legitimately take (reading its body, then waiting for its batch), then are cut off,
      instead of uvicorn's default of waiting forever for slow clients.

    The body read deadline itself is the app's (``config.read_timeout_s``): uvicorn has none.
    """
    return {"timeout_keep_alive": 5,
            "timeout_graceful_shutdown": int(config.read_timeout_s + config.batch.timeout_s) + 1}


class ModelService:
    """The loaded model, its two batchers (``/predict`` and ``/features``) and a private copy
    of the network for feature maps (hooks need one that ``/predict`` does not run)."""

    def __init__(self, loaded, config: ServeConfig):
        self.loaded = loaded
        self.config = config
        self.input_shape = tuple(loaded.input_shape)
        self.task = loaded.task
        if self.task == "classify":
            self.batcher = DynamicBatcher(self._predict_batch, config.batch)
        else:  # uploads keep their own sizes: the batch is a list, resized by task_predict
            self.batcher = DynamicBatcher(self._task_batch, config.batch, stack=False)
        feature_batch = replace(config.batch, max_wait_ms=config.feature_max_wait_ms,
                                max_batch=min(config.batch.max_batch, config.feature_max_batch))
        self.feature_batcher = DynamicBatcher(self._features_batch, feature_batch)
        self._feature_model = copy.deepcopy(loaded.model).eval()
        self.info = self._model_info()

    def _predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) uint8 -> (N, K) probabilities; runs in the batcher's thread."""
        with torch.inference_mode():
            return self.loaded.predict_proba(torch.from_numpy(batch)).numpy()

    def _task_batch(self, images: list[np.ndarray]) -> list[dict]:
        """uint8 (C, H_i, W_i) images -> their boxes or masks in their own pixels."""
        with torch.inference_mode():
            return predict_task_images(self.loaded, [torch.from_numpy(i) for i in images])

    def _model_info(self) -> dict:
        loaded = self.loaded
        norm = loaded.normalization
        try:
            table = str(summary(loaded.model, format_shape_hwc(self.input_shape)))
        except (ValueError, TypeError, RuntimeError) as error:  # a model summary cannot trace
            table = f"(no summary: {error})"
        return {
            "model": type(loaded.model).__name__,
            "task": loaded.task,
            "backend": loaded.backend,
            "architecture": getattr(loaded.model, "architecture", None),
            "class_names": list(loaded.class_names),
            "input_shape": list(self.input_shape),
            "input": format_shape_hwc(self.input_shape),
            "normalization": None if norm is None else {"mean": list(norm.mean),
                                                        "std": list(norm.std)},
            "parameters": sum(p.numel() for p in loaded.model.parameters()),
            "summary": table,
            "limits": asdict(self.config.limits),
            "batching": asdict(self.config.batch),
        }

    def top_k(self, probs: np.ndarray, k: int) -> list[dict]:
        order = np.argsort(-probs, kind="stable")[:k]
        return [{"class": self.loaded.class_names[i], "probability": float(probs[i])}
                for i in order]

    def _features_batch(self, batch: np.ndarray) -> list[tuple[np.ndarray, list[LayerMaps]]]:
        """(N, C, H, W) uint8 -> per image, its probabilities (K,) and its recorded layers.

        Runs in the feature batcher's thread, one batch at a time, so the hooks on the private
        model never see another pass; the PNGs are encoded afterwards, per request.
        """
        norm = self.loaded.normalization
        x = torch.from_numpy(batch)
        x = norm.apply(x) if norm is not None else x.float() / 255  # (N, C, H, W) float
        layers, logits = batch_feature_maps(self._feature_model, x,
                                            max_channels=self.config.max_feature_channels,
                                            max_layers=self.config.max_feature_layers)
        probs = torch.softmax(logits, dim=1).numpy()  # (N, K)
        return list(zip(probs, layers))

    def feature_response(self, image: np.ndarray,
                         result: tuple[np.ndarray, list[LayerMaps]]) -> dict:
        """The ``/features`` JSON for one uint8 (C, H, W) image and its batcher result."""
        probs, layers = result
        return {"probabilities": [float(p) for p in probs],
                "class_names": list(self.loaded.class_names),
                "predictions": self.top_k(probs, self.config.top_k),
                "input": image_to_png_base64(image), "layers": encode_layers(layers)}


async def _read_images(request: Request, service: ModelService) -> tuple[list[np.ndarray], bool]:
    """Decode the request body into uint8 images (C, H, W) and whether it was a batch."""
    limits = service.config.limits
    shape = service.input_shape
    keep_size = service.task != "classify"  # boxes and masks go back onto the upload's pixels
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        # The body size is already bounded by the middleware; the image count is checked here.
        try:
            async with request.form(max_part_size=limits.max_upload_bytes) as form:
                uploads = [item for item in form.getlist("file") if hasattr(item, "read")]
                if not uploads:
                    raise RequestError(400, "no_file", 'the multipart body has no "file" field '
                                                       "with an uploaded image")
                if len(uploads) > limits.max_images:
                    raise RequestError(413, "too_many_images",
                                       f"{len(uploads)} images in one request, the limit is "
                                       f"{limits.max_images}; split the batch")
                contents = [await upload.read() for upload in uploads]
        except (MultiPartException, StarletteHTTPException) as error:
            detail = getattr(error, "detail", None) or getattr(error, "message", str(error))
            raise RequestError(400, "bad_multipart",
                               f"the multipart body cannot be parsed ({detail})") from None
        images = [await run_in_threadpool(decode_image_bytes, data, shape, limits,
                                          keep_size=keep_size)
                  for data in contents]
        return images, len(images) > 1
    body = await request.body()
    if not body:
        raise RequestError(400, "empty_body", "the request body is empty; send an image")
    if content_type == "application/json":
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError) as error:
            raise RequestError(400, "bad_json", f"the body is not valid JSON ({error})") from None
        return await run_in_threadpool(decode_json_body, parsed, shape, limits,
                                       keep_size=keep_size)
    if content_type.startswith("image/"):
        return [await run_in_threadpool(decode_image_bytes, body, shape, limits,
                                        keep_size=keep_size)], False
    raise RequestError(415, "unsupported_media_type",
                       f"Content-Type {content_type or '(none)'!r} is not accepted; send "
                       "multipart/form-data (field 'file'), application/json or image/*")


def create_app(run_or_loaded, config: ServeConfig | None = None) -> FastAPI:
    """Build the FastAPI app serving one trained model.

    Args:
        run_or_loaded: a run folder or a ``LoadedModel`` (``cnnkit.load(RUN)``); a run
            folder caches its ONNX export in ``RUN/.cache`` (see ``config.backend``).
        config: limits, batching, backend and page settings (default :class:`ServeConfig`).

    Raises:
        CheckpointError: the run folder cannot be loaded.
        ValueError / ExportError: ``config.backend="onnxruntime"`` cannot be used.

    Example:
        >>> import uvicorn
        >>> uvicorn.run(create_app("runs/digits"), host="127.0.0.1", port=8000)  # doctest: +SKIP
    """

    config = config or ServeConfig()
    is_run = isinstance(run_or_loaded, (str, Path))
    # A copy, so that the caller's LoadedModel keeps its own backend (the network is shared).
    loaded = replace(resolve_loaded(run_or_loaded))
    use_backend(loaded, config.backend,
                cache_dir=Path(run_or_loaded) / CACHE_DIR if is_run else None,
                spinning=config.spinning)
    service = ModelService(loaded, config)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        await service.batcher.start()
        await service.feature_batcher.start()
        try:
            yield
        finally:
            await service.feature_batcher.stop()
            await service.batcher.stop()

    does = {"classify": "Classifies", "localize": "Finds the class and box of",
            "segment": "Segments", "detect": "Detects the objects in"}[service.task]
    app = FastAPI(title="cnnkit model server", lifespan=lifespan,
                  description=f"{does} {service.info['input']} images ("
                              f"{len(service.loaded.class_names)} classes).")
    app.state.service = service
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.limits.max_upload_bytes)
    app.add_middleware(ReadDeadlineMiddleware, timeout_s=config.read_timeout_s)

    @app.exception_handler(RequestError)
    async def _request_error(_request, error: RequestError):
        return _error(error.status, error.error, error.detail)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_request, error: BodyTooLarge):
        return _error(413, "body_too_large", str(error))

    @app.exception_handler(BodyReadTimeout)
    async def _read_timeout(_request, error: BodyReadTimeout):
        # The rest of the body may still be on its way: close the connection after answering.
        response = _error(408, "read_timeout", str(error))
        response.headers["connection"] = "close"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, error: StarletteHTTPException):
        code = HTTPStatus(error.status_code).phrase.lower().replace(" ", "_")
        return _error(error.status_code, code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request, error: RequestValidationError):
        return _error(422, "invalid_parameter", str(error.errors()))

    async def batched(batcher: DynamicBatcher, images: list[np.ndarray]) -> list:
        try:
            return await asyncio.gather(*(batcher.submit(image) for image in images))
        except QueueFull as error:
            raise RequestError(503, "overloaded", f"the server is overloaded ({error}); "
                                                  "retry later") from None
        except BatchTimeout as error:
            raise RequestError(504, "timeout", str(error)) from None

    @app.post("/predict", openapi_extra={"requestBody": _REQUEST_BODY_DOC}, responses=_ERRORS_DOC)
    async def predict(request: Request, top_k: int | None = Query(None, ge=1)):
        """Top-k classes with probabilities (a task run: its box, mask or detections) for one
        image, or for each image of a batch."""
        images, is_batch = await _read_images(request, service)
        rows = await batched(service.batcher, images)
        if service.task == "classify":
            k = top_k or config.top_k
            results = [{"predictions": service.top_k(row, k)} for row in rows]
        else:
            num_classes = len(service.loaded.class_names)
            results = [await run_in_threadpool(task_response, service.task, image, row,
                                               num_classes)
                       for image, row in zip(images, rows)]
        return {"results": results} if is_batch else results[0]

    @app.post("/features", openapi_extra={"requestBody": _REQUEST_BODY_DOC},
              responses=_ERRORS_DOC)
    async def features(request: Request):
        """All class probabilities and every layer's feature maps (PNG, base64) for one image."""
        if service.task != "classify":
            raise RequestError(400, "not_a_classifier",
                               f"/features shows a classifier's probabilities and layers; this "
                               f"run does {service.task!r}: use /predict")
        images, is_batch = await _read_images(request, service)
        if is_batch:
            raise RequestError(400, "batch_not_supported",
                               "/features takes one image; use /predict for batches")
        [result] = await batched(service.feature_batcher, images)
        return await run_in_threadpool(service.feature_response, images[0], result)

    @app.get("/health")
    async def health():
        """Liveness, and how much work the batchers have done (``features``: ``/features``'s)."""
        batcher, features = service.batcher, service.feature_batcher
        return {"status": "ok", "pending": batcher.pending, "batches": batcher.batches_run,
                "images": batcher.images_run,
                "features": {"pending": features.pending, "batches": features.batches_run,
                             "images": features.images_run}}

    @app.get("/model")
    async def model_info():
        """Architecture, classes, input size (C, H, W and H×W×C), normalisation, summary."""
        return service.info

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
