"""``cnnkit export RUN --format onnx|torchscript|torch.export [--out FILE]``: verified exports."""
from __future__ import annotations

import argparse
from pathlib import Path

from cnnkit.export import FORMATS


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", allow_abbrev=False,
        help="export a trained run to ONNX, TorchScript or torch.export (verified)",
        description="Write a trained run as a self-contained model file: it takes raw uint8 "
                    "pixels (N, C, H, W) with any N, applies the run's normalisation itself and "
                    "returns logits (N, K). Localise, segment and detect runs export to ONNX "
                    "with the decoding in the graph: probabilities + pixel boxes; logits + "
                    "mask; boxes, scores, labels (class-aware NMS is a post-step, described in "
                    "the metadata). The file is checked against PyTorch on several "
                    "batch sizes; if the outputs differ, nothing is written and the command "
                    "fails. ONNX files carry the class names and normalisation in their "
                    "metadata ('cnnkit' key).",
        epilog="examples:\n  cnnkit export runs/digits --format onnx\n"
               "  cnnkit export runs/digits --format torchscript --out digits.pt",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run folder written by cnnkit train")
    p.add_argument("--format", choices=list(FORMATS), default="onnx",
                   help="file format (default onnx)")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="file to write (default RUN/model.onnx, RUN/model.pt or RUN/model.pt2)")
    p.add_argument("--input-dtype", choices=("uint8", "float32"), default="uint8",
                   help="input pixels: uint8 0-255 (default) or float32 0-1")
    p.add_argument("--no-fold-normalization", action="store_true",
                   help="export the bare network: its input must be normalised float32")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset version (default 18; ONNX only)")
    p.set_defaults(func=run)


# What re-ran the written file for the check (cnnkit.export: verify_onnx, torchscript._verify).
_VERIFIED_WITH = {"onnx": "onnxruntime (CPU)", "torchscript": "the reloaded TorchScript file",
                  "torch.export": "the reloaded torch.export program"}


def run(args: argparse.Namespace) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.export import export, read_onnx_metadata
    from cnnkit.export.onnx import VERIFY_BATCH_SIZES
    from cnnkit.export.verify import DEFAULT_ATOL, DEFAULT_RTOL

    out = Path(args.out) if args.out else Path(args.run) / f"model{FORMATS[args.format]}"
    options = {"fold_normalization": not args.no_fold_normalization,
               "input_dtype": args.input_dtype}
    if args.opset is not None:
        if args.format != "onnx":
            raise ValueError(f"--opset applies to --format onnx only, got --format {args.format!r}")
        options["opset"] = args.opset
    path = export(args.run, out, format=args.format, **options)
    print(f"wrote {path} ({args.format}, verified against PyTorch)")
    print(f"verified: {_VERIFIED_WITH[args.format]} gave the same outputs as the PyTorch model "
          f"on random {args.input_dtype} images at batch sizes "
          f"{', '.join(map(str, VERIFY_BATCH_SIZES))} (rtol {DEFAULT_RTOL:g}, "
          f"atol {DEFAULT_ATOL:g})")
    if args.format == "onnx":
        metadata = read_onnx_metadata(path)
        if "outputs" in metadata:
            print(f"task {metadata['task']}: outputs {', '.join(metadata['outputs'])}")
        if "postprocess" in metadata:
            print(f"note: {metadata['postprocess']}")
    return 0
