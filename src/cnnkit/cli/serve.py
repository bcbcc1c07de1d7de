"""``cnnkit serve RUN [--host 127.0.0.1 --port 8000]``: the prediction server and web page."""
from __future__ import annotations

import argparse

#: ``--spinning``'s values: ``cnnkit.export.onnx.SPINNING_MODES``, written out here so that
#: ``cnnkit --help`` imports neither torch nor onnxruntime (tests/serve/test_serve_cli.py checks
#: that the two agree).
SPINNING_CHOICES = ("never", "run", "always")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", allow_abbrev=False,
        help="serve a trained run over HTTP, with a web page to draw or upload images",
        description="Start an HTTP server (FastAPI + uvicorn) for a trained run: POST /predict "
                    "(multipart upload, JSON base64 or pixel array, or a batch), POST "
                    "/features, GET /health, GET /model, the OpenAPI page at /docs and a web "
                    "page at / that shows the class probabilities and every layer's feature "
                    "maps as you draw. For a localise, segment or detect run, /predict returns "
                    "the box, the mask (PNG, base64) with class areas, or the detections, in "
                    "the uploaded image's pixels, and the page draws them on the image. "
                    "Requests are batched dynamically.",
        epilog="example:\n  cnnkit serve runs/digits --port 8000   # then open "
               "http://127.0.0.1:8000/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run folder written by cnnkit train")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--max-batch", type=int, default=32,
                   help="most images per forward pass (default 32)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="longest wait for a batch to fill, in ms (default 5)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds a request may wait for its prediction before 504 (default 10)")
    p.add_argument("--max-upload-mb", type=float, default=8.0,
                   help="largest request body in MiB (default 8)")
    p.add_argument("--read-timeout", type=float, default=10.0,
                   help="seconds a request body may take to arrive before 408 and the "
                        "connection is closed; bounds slow (slowloris) uploads (default 10)")
    p.add_argument("--max-pixels", type=int, default=16_000_000,
                   help="largest image, width x height, checked before decoding (default 16e6)")
    p.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default="auto",
                   help="what runs /predict: onnxruntime (the run's verified ONNX export, cached "
                        "in RUN/.cache), torch, or auto (default: onnxruntime where it is "
                        "installed and the export verifies, else torch; for every task)")
    p.add_argument("--spinning", choices=SPINNING_CHOICES, default="never",
                   help="how onnxruntime's idle threads wait for work: never (default: no "
                        "core burnt between requests, the best for many clients), run (spin "
                        "inside a batch, stop at its end), always (onnxruntime's own default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # optional extra: serve (uvicorn)

        # optional extra: serve (cnnkit.serve imports fastapi)
        from cnnkit.serve import create_app, server_options
    except ImportError as error:
        raise ValueError(f"cnnkit serve needs the serve extra ({error}); install it with "
                         "pip install 'cnnkit[serve]'") from None

    config = serve_config(args)
    app = create_app(args.run, config)
    backend = app.state.service.loaded.backend
    print(f"serving {args.run} with {backend} on http://{args.host}:{args.port}/ "
          "(Ctrl+C to stop)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                **server_options(config))
    return 0


def serve_config(args: argparse.Namespace):
    """The parsed ``cnnkit serve`` arguments as a :class:`cnnkit.serve.ServeConfig`.

    Raises:
        ValueError: a value out of range (the message names the option and the fix).
    """
    from cnnkit.serve import BatchConfig, ServeConfig, ServeLimits  # optional extra: serve

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port!r}")
    if not args.max_upload_mb > 0:
        raise ValueError(f"--max-upload-mb must be > 0, got {args.max_upload_mb!r}")
    return ServeConfig(
        limits=ServeLimits(max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                           max_pixels=args.max_pixels),
        batch=BatchConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                          timeout_s=args.timeout),
        read_timeout_s=args.read_timeout, backend=args.backend, spinning=args.spinning)
