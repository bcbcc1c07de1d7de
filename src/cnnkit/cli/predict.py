"""``cnnkit predict RUN IMAGE|FOLDER|GLOB ... --top 3 [--json|--csv]``: classify image files.

Runs of the other tasks print a box (localize), the class areas (segment, with ``--out`` the
mask and overlay PNGs) or one line per detection (detect; ``--json``: COCO results format).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from cnnkit._checks import check_positive_int


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", allow_abbrev=False, help="classify image files with a trained run",
        description="Print the most probable classes of each image (batched, any number of "
                    "files). Images are converted to the run's channels and size. Localisation "
                    "runs print the label, probability and box; segmentation runs the class "
                    "areas (and write mask + overlay PNGs to --out); detection runs one line "
                    "per detection (--json: COCO results).")
    p.add_argument("run", metavar="RUN", help="run folder written by cnnkit train")
    p.add_argument("inputs", metavar="IMAGE", nargs="+",
                   help="image files, folders (searched recursively) or glob patterns")
    p.add_argument("--top", type=int, default=3, help="classes shown per image (default 3)")
    p.add_argument("--batch-size", type=int, default=256, help="images per batch (default 256)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average with the horizontally flipped image (default: as the run was "
                        "trained to be tested, its recipe's tta setting)")
    p.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default="auto",
                   help="what runs the network: onnxruntime (the run's verified ONNX export, "
                        "made once and cached in RUN/.cache), torch, or auto (default: "
                        "onnxruntime if it is installed and the export is cached or there are "
                        "at least 1024 images to pay for exporting; else torch)")
    p.add_argument("--out", metavar="DIR",
                   help="segmentation: write each image's mask (PNG of class indices) and colour "
                        "overlay there; detection / localisation: each image with its boxes drawn")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true",
                     help="JSON Lines: one JSON object per image, each line ending in a newline "
                          "(detection runs: one JSON array of COCO results)")
    fmt.add_argument("--csv", action="store_true", help="CSV: file, rank, class, probability")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.export.runtime import AUTO_EXPORT_MIN_IMAGES, CACHE_DIR, use_backend
    from cnnkit.run.predict import expand_inputs, predict_files
    from cnnkit.run.folder import load_run

    check_positive_int(args.top, "--top")
    check_positive_int(args.batch_size, "--batch-size")
    files = expand_inputs(args.inputs)
    loaded = load_run(args.run)
    if loaded.task != "classify" and (args.csv or args.tta is True):
        given = "--csv" if args.csv else "--tta"
        raise ValueError(f"{given} is for classifiers; this run does {loaded.task}: drop it")
    if loaded.task == "classify" and args.out:
        raise ValueError("--out writes masks and boxes of segmentation, localisation and "
                         f"detection runs; {args.run} is a classifier: drop --out")
    loaded = use_backend(loaded, args.backend, cache_dir=Path(args.run) / CACHE_DIR,
                         export=len(files) >= AUTO_EXPORT_MIN_IMAGES)
    if loaded.task != "classify":
        return _predict_task(args, loaded, files)
    results = predict_files(loaded, files, top=args.top, batch_size=args.batch_size,
                            tta=args.tta)
    if args.json:
        for item in results:
            print(json.dumps(item))
    elif args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["file", "rank", "class", "probability"])
        for item in results:
            for rank, pred in enumerate(item["predictions"], start=1):
                writer.writerow([item["file"], rank, pred["class"], f"{pred['probability']:.6f}"])
    else:
        for item in results:
            shown = ", ".join(f"{p['class']} {p['probability']:.3f}" for p in item["predictions"])
            print(f"{item['file']}: {shown}")
    return 0


def _predict_task(args: argparse.Namespace, loaded, files) -> int:
    """Localise / segment / detect: boxes or masks per image (and files under --out)."""
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.run.task_predict import predict_task_files

    results = predict_task_files(loaded, files, batch_size=min(args.batch_size, 64))
    if args.out:
        _write_pictures(loaded, results, Path(args.out))
    if args.json and loaded.task == "detect":
        print(json.dumps(_coco_results(loaded, results)))
        return 0
    for item in results:
        if args.json:
            print(json.dumps({k: v for k, v in item.items() if k != "mask"}))
        elif loaded.task == "localize":
            box = ", ".join(f"{v:.1f}" for v in item["box"])
            print(f"{item['file']}: {item['label']} {item['probability']:.3f} box [{box}]")
        elif loaded.task == "segment":
            areas = ", ".join(f"{name} {share:.1%}" for name, share in item["areas"].items())
            print(f"{item['file']}: {areas}")
        else:
            print(f"{item['file']}: {len(item['detections'])} detections")
            for det in item["detections"]:
                box = ", ".join(f"{v:.1f}" for v in det["box"])
                print(f"  {det['label']} {det['score']:.3f} box [{box}]")
    if args.out:
        print(f"pictures written to {args.out}", file=sys.stderr)
    return 0


def _coco_results(loaded, results) -> list[dict]:
    """Detections in the COCO results format (bbox [x, y, width, height], category = label+1)."""
    rows = []
    for image_id, item in enumerate(results):
        for det in item["detections"]:
            x0, y0, x1, y1 = det["box"]
            rows.append({"image_id": image_id, "file": item["file"],
                         "category_id": loaded.class_names.index(det["label"]) + 1,
                         "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
                         "score": det["score"]})
    return rows


def _write_pictures(loaded, results, out: Path) -> None:
    """Segment: <stem>_mask.png (class indices) and <stem>_overlay.png; boxes: <stem>_boxes.png."""
    # import cost: Pillow + numpy drawing, only with --out
    import numpy as np
    import torch

    from cnnkit.data.folder import decode_image
    from cnnkit.viz.overlay import draw_boxes, overlay_mask, png_bytes

    out.mkdir(parents=True, exist_ok=True)
    for item in results:
        stem = Path(item["file"]).stem
        image = decode_image(item["file"], channels=loaded.input_shape[0])  # (C, H0, W0)
        if loaded.task == "segment":
            mask = item["mask"].numpy() if isinstance(item["mask"], torch.Tensor) else item["mask"]
            (out / f"{stem}_mask.png").write_bytes(png_bytes(np.asarray(mask, dtype=np.uint8)))
            picture = overlay_mask(image, mask, len(loaded.class_names))
            (out / f"{stem}_overlay.png").write_bytes(png_bytes(picture))
            continue
        found = item["detections"] if loaded.task == "detect" else [item]
        boxes = np.array([d["box"] for d in found], dtype=np.float32).reshape(-1, 4)
        scores = [d.get("score", d.get("probability")) for d in found]
        picture = draw_boxes(image, boxes, [d["label"] for d in found], scores=scores)
        (out / f"{stem}_boxes.png").write_bytes(png_bytes(picture))
