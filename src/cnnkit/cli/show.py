"""``cnnkit show ...``: pictures of what a CNN does, each written as a PNG whose path is printed.

Without a trained run: ``kernels``, ``kernel``, ``conv-matrix``, ``signals``, ``augment``.
For a run folder (``cnnkit train --out RUN``): ``filters``, ``maps``, ``rf``, ``gradcam``,
``saliency``, ``curves``, ``mistakes``. Heavy modules are imported inside each command so that
``cnnkit --help`` stays fast.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cnnkit._checks import check_positive_int, format_shape_hwc, parse_input_shape

_FORMATTER = argparse.RawDescriptionHelpFormatter


# ----------------------------------------------------------------------------- helpers


def _sibling(path: Path, suffix: str) -> Path:
    """``maps.png`` + ``"probs"`` -> ``maps-probs.png`` (the extra pictures of one command)."""
    return path.with_name(f"{path.stem}-{suffix}{path.suffix}")


def _padding(text: str) -> int | str:
    if text in ("same", "valid"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--padding must be an int >= 0, 'same' or 'valid', got {text!r}") from None


def _unit(text: str) -> tuple[int, int]:
    try:
        row, col = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--unit must be ROW,COLUMN of the unit in the layer's output grid, e.g. 3,4; "
            f"got {text!r}") from None
    return row, col


def _load_run(path: str):
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.run.folder import load_run

    return load_run(path)


def _run_image(run, path: str):
    """(uint8 (C, H, W) resized to the run's input, normalised float (C, H, W)) for one file."""
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    import torch

    from cnnkit.data.folder import decode_image

    channels, height, width = run.input_shape
    raw = torch.tensor(decode_image(path, channels=channels, size=(height, width)))
    if run.normalization is not None:
        return raw, run.normalization.apply(raw)
    return raw, raw.float() / 255


def _class_index(run, text: str | None) -> int | None:
    """``--class``: a class name of the run or an index; None means the predicted class."""
    if text is None:
        return None
    if text in run.class_names:
        return run.class_names.index(text)
    if text.isdigit() and int(text) < len(run.class_names):
        return int(text)
    raise ValueError(f"--class {text!r} is neither a class name nor an index of this run; "
                     f"classes: {run.class_names}")


def _done(*paths: Path) -> int:
    for path in paths:
        print(path)
    return 0


# ----------------------------------------------------------------------------- commands


def _kernels(args) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.inspect.kernels import KERNEL_DESCRIPTIONS, KERNELS, kernel_names

    for name in kernel_names():
        kh, kw = KERNELS[name].shape
        print(f"{name:<16} {kh}x{kw}  {KERNEL_DESCRIPTIONS[name]}")
    return 0


def _kernel(args) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    import torch

    from cnnkit.data.folder import decode_image
    from cnnkit.inspect.kernels import apply_kernel, get_kernel
    from cnnkit.viz.kernels import plot_kernel_result

    weights = get_kernel(args.name)
    image = torch.tensor(decode_image(args.image, channels=3 if args.color else 1))
    filtered = apply_kernel(image, weights, stride=args.stride, padding=args.padding)
    out = Path(args.out or f"kernel-{args.name}.png")
    plot_kernel_result(image, filtered, weights, name=args.name, stride=args.stride,
                       padding=args.padding, path=out)
    return _done(out)


def _conv_matrix(args) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.inspect.conv_matrix import conv_as_matrix
    from cnnkit.inspect.kernels import get_kernel
    from cnnkit.viz.kernels import plot_conv_matrix

    input_shape = parse_input_shape(args.input, "--input")
    weights = get_kernel(args.kernel)
    # The same kernel on every input channel: (kh, kw) -> (1, C, kh, kw)
    weight = weights.expand(1, input_shape[0], *weights.shape)
    matrix, out_shape = conv_as_matrix(weight, input_shape, stride=args.stride, padding=args.padding)
    out = Path(args.out or f"conv-matrix-{args.kernel}.png")
    plot_conv_matrix(matrix, input_shape, out_shape, path=out)
    print(f"{format_shape_hwc(input_shape)} input -> {format_shape_hwc(out_shape)} output: "
          f"a {matrix.shape[0]}x{matrix.shape[1]} matrix")
    return _done(out)


def _signals(args) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.viz.signals import plot_signal_examples

    out = Path(args.out)
    plot_signal_examples(path=out)
    return _done(out)


def _augment(args) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.augment.parse import parse_augment
    from cnnkit.augment.preview import augment_grid
    from cnnkit.data.open import open_data

    count = check_positive_int(args.count, "--count")
    train = open_data(args.data).train
    pipeline = parse_augment(args.augment, num_classes=len(train.class_names))
    out = Path(args.out)
    augment_grid(train.images[:count], pipeline, n_variants=args.variants, seed=args.seed,
                 class_names=train.class_names, labels=train.labels[:count], path=out)
    return _done(out)


def _filters(args) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.inspect.filters import filter_grid
    from cnnkit.viz.grids import plot_filters

    run = _load_run(args.run)
    out = Path(args.out)
    plot_filters(filter_grid(run.model, args.layer), path=out)
    return _done(out)


def _maps(args) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.inspect.feature_maps import class_probabilities, feature_maps
    from cnnkit.viz.bars import plot_class_probabilities
    from cnnkit.viz.grids import plot_feature_maps

    run = _load_run(args.run)
    _, x = _run_image(run, args.image)
    out = Path(args.out)
    plot_feature_maps(feature_maps(run.model, x), max_channels=args.max_channels, path=out)
    probs = class_probabilities(run.model, x, run.class_names)
    probs_out = _sibling(out, "probs")
    plot_class_probabilities(probs.probs, probs.class_names, path=probs_out)
    return _done(out, probs_out)


def _rf(args) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    import torch

    from cnnkit.inspect.receptive_field import empirical_receptive_field, unit_region
    from cnnkit.viz.heatmap import plot_receptive_field

    run = _load_run(args.run)
    shape = format_shape_hwc(run.input_shape)
    region = unit_region(run.model, args.layer, args.unit, shape)
    mask = empirical_receptive_field(run.model, args.layer, args.unit, shape)
    image = _run_image(run, args.image)[0] if args.image else torch.full(run.input_shape, 128,
                                                                         dtype=torch.uint8)
    out = Path(args.out)
    plot_receptive_field(image, region.box, mask,
                         title=f"Receptive field of unit {args.unit} in layer {args.layer!r}",
                         path=out)
    return _done(out)


def _run_image_and_target(args):
    """The run, the image (raw and as the model's input) and the class to explain: ``--class``,
    else the class the model predicts."""
    run = _load_run(args.run)
    raw, x = _run_image(run, args.image)
    target = _class_index(run, args.class_)
    if target is None:
        target = int(run.predict_proba(raw).argmax())
    return run, raw, x, target


def _gradcam(args) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.inspect.saliency import grad_cam
    from cnnkit.viz.heatmap import plot_heatmap

    run, raw, x, target = _run_image_and_target(args)
    cam = grad_cam(run.model, x, target=target, layer=args.layer)
    out = Path(args.out)
    plot_heatmap(raw, cam, title=f"Grad-CAM for class {run.class_names[target]!r}", path=out)
    return _done(out)


def _saliency(args) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.inspect.saliency import saliency
    from cnnkit.viz.heatmap import plot_heatmap

    run, raw, x, target = _run_image_and_target(args)
    out = Path(args.out)
    plot_heatmap(raw, saliency(run.model, x, target=target),
                 title=f"Saliency |d score / d pixel| for {run.class_names[target]!r}", path=out)
    return _done(out)


def _curves(args) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.viz.curves import plot_training_curves

    metrics = Path(args.run) / "metrics.jsonl"
    if not metrics.is_file():
        raise FileNotFoundError(f"{str(metrics)!r} does not exist; give the --out folder of a "
                                "cnnkit train run")
    out = Path(args.out)
    plot_training_curves(metrics, path=out)
    return _done(out)


def _mistakes(args) -> int:
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.data.open import open_data
    from cnnkit.errors import DataError
    from cnnkit.inspect.mistakes import confusion_matrix, most_confident_mistakes, per_class_accuracy
    from cnnkit.viz.bars import plot_per_class_accuracy
    from cnnkit.viz.confusion import plot_confusion_matrix
    from cnnkit.viz.mistakes import plot_mistakes

    run = _load_run(args.run)
    parts = open_data(args.data).parts()
    if args.split not in parts:
        raise DataError(f"--data {args.data!r} has no {args.split!r} split; it has "
                        f"{sorted(parts)}: pass --split with one of them")
    data = parts[args.split]
    if data.class_names != run.class_names:
        raise DataError(f"--data classes {data.class_names!r} differ from the run's "
                        f"{run.class_names!r}")
    probs = run.predict_proba(data.images)
    predicted = probs.argmax(dim=1)
    cm = confusion_matrix(data.labels, predicted, len(run.class_names))
    worst = most_confident_mistakes(probs, data.labels, k=args.k)
    out = Path(args.out)
    written = [_sibling(out, "confusion"), _sibling(out, "confusion-normalized"),
               _sibling(out, "per-class-accuracy")]
    plot_confusion_matrix(cm, run.class_names, path=written[0])
    plot_confusion_matrix(cm, run.class_names, normalize=True, path=written[1])
    plot_per_class_accuracy(per_class_accuracy(cm), run.class_names, path=written[2])
    if len(worst.indices):
        plot_mistakes(data.images[worst.indices], data.labels[worst.indices], worst.predicted,
                      worst.confidence, run.class_names, path=out)
        written.insert(0, out)
    else:
        print(f"no mistakes on the {args.split} split: {out} not written")
    return _done(*written)


# ----------------------------------------------------------------------------- parsers


def _command(sub, name: str, help_text: str, description: str, func, example: str):
    parser = sub.add_parser(name, help=help_text, description=description,
                            epilog=f"example:\n  {example}", formatter_class=_FORMATTER)
    parser.set_defaults(func=func)
    return parser


def _out(parser, default: str) -> None:
    parser.add_argument("--out", metavar="PNG", default=default,
                        help=f"where to write the picture (default: {default or 'derived from the name'})")


def add_parser(subparsers) -> None:
    show = subparsers.add_parser(
        "show", help="draw what a CNN does: kernels, filters, feature maps, Grad-CAM, curves...",
        description="Draw a picture of what a convolutional network does and write it as a PNG "
                    "(the path is printed). Commands without RUN need no trained model.",
        formatter_class=_FORMATTER,
    )
    # type(show): the CLI's own parser class, so usage errors exit with code 2 here too.
    sub = show.add_subparsers(dest="show_command", metavar="WHAT", required=True,
                              parser_class=type(show))

    _command(sub, "kernels", "list the classic image kernels",
             "List the named kernels (blur, sharpen, edge, Sobel, curve detector...) with their "
             "size and weights.", _kernels, "cnnkit show kernels")

    p = _command(sub, "kernel", "apply a classic kernel to an image (before/after picture)",
                 "Convolve an image with a named kernel as a CNN layer does (cross-correlation, "
                 "zero padding), showing the input, the kernel weights and the output. Output "
                 "size: O = (W - K + 2P)/S + 1.", _kernel,
                 "cnnkit show kernel sobel-x photo.jpg --padding same --out edges.png")
    p.add_argument("name", metavar="NAME", help="kernel name (see `cnnkit show kernels`)")
    p.add_argument("image", metavar="IMAGE", help="an image file (PNG, JPEG, ...)")
    p.add_argument("--stride", type=int, default=1, help="step between positions (default: 1)")
    p.add_argument("--padding", type=_padding, default=0,
                   help="zeros around the image: an int, 'same' or 'valid' (default: 0)")
    p.add_argument("--color", action="store_true",
                   help="filter each RGB channel (default: the grey image, as the tutorials do)")
    _out(p, "")

    p = _command(sub, "conv-matrix", "show convolution as a (sparse, shared-weight) matrix",
                 "Build the matrix M with M @ x.flatten() == conv2d(x, kernel) for a small input "
                 "and draw it: one row per output unit, one column per input pixel.",
                 _conv_matrix,
                 "cnnkit show conv-matrix --input 4x4 --kernel edge --stride 1 --padding 0")
    p.add_argument("--input", metavar="HxW[xC]", default="4x4", help="input size (default: 4x4)")
    p.add_argument("--kernel", metavar="NAME", default="edge", help="kernel name (default: edge)")
    p.add_argument("--stride", type=int, default=1, help="stride (default: 1)")
    p.add_argument("--padding", type=int, default=0, help="zero padding (default: 0)")
    _out(p, "")

    p = _command(sub, "signals", "1-D convolution examples: sum of two dice, an echo",
                 "Draw the 'Understanding Convolutions' examples: the distribution of the sum of "
                 "two dice as a convolution, and a sound convolved with an echo kernel.",
                 _signals, "cnnkit show signals --out signals.png")
    _out(p, "signals.png")

    p = _command(sub, "augment", "preview data augmentation on a few training images",
                 "Draw a few training images (rows), each followed by augmented versions.",
                 _augment, "cnnkit show augment digits --augment 'flip,crop(2)' --out aug.png")
    p.add_argument("data", metavar="DATA", help="a dataset path or name (as for --data)")
    p.add_argument("--augment", required=True, metavar="SPEC",
                   help="augmentation spec, e.g. 'flip,crop(4),rotate(10)'")
    p.add_argument("--count", type=int, default=4, help="images to show (default: 4)")
    p.add_argument("--variants", type=int, default=8, help="augmented versions each (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    _out(p, "augment.png")

    p = _command(sub, "filters", "the learned kernels of a conv layer as an image grid",
                 "Draw the filters of a conv layer of a trained run: colour tiles for a first "
                 "layer on RGB images, one grey tile per input channel otherwise, with the "
                 "weight scale.", _filters, "cnnkit show filters runs/mnist --layer 0")
    p.add_argument("run", metavar="RUN", help="a run folder (--out of cnnkit train)")
    p.add_argument("--layer", metavar="NAME", default=None,
                   help="conv layer name as in `cnnkit summary` (default: the first conv layer)")
    _out(p, "filters.png")

    p = _command(sub, "maps", "feature maps of every layer for one image, and its probabilities",
                 "Draw every channel of every conv/activation/pool output for one image, layer "
                 "by layer, and the class probabilities as a bar chart (written next to it "
                 "as NAME-probs.png).", _maps, "cnnkit show maps runs/mnist digit.png")
    p.add_argument("run", metavar="RUN", help="a run folder (--out of cnnkit train)")
    p.add_argument("image", metavar="IMAGE", help="an image file; resized to the model's input")
    p.add_argument("--max-channels", type=int, default=32, help="channels per layer (default: 32)")
    _out(p, "maps.png")

    p = _command(sub, "rf", "the input region one unit of a layer sees",
                 "Draw the receptive field of one unit: the theoretical box from the layer "
                 "arithmetic and the pixels that reach it by gradient (effective field).",
                 _rf, "cnnkit show rf runs/mnist --layer conv2 --unit 2,2 --image digit.png")
    p.add_argument("run", metavar="RUN", help="a run folder (--out of cnnkit train)")
    p.add_argument("--layer", required=True, metavar="NAME", help="layer name (see cnnkit summary)")
    p.add_argument("--unit", type=_unit, default=(0, 0), metavar="I,J",
                   help="row,column of the unit in the layer's output grid (default: 0,0)")
    p.add_argument("--image", metavar="IMAGE", default=None,
                   help="draw on this image (default: a grey canvas)")
    _out(p, "rf.png")

    for name, func, what in (("gradcam", _gradcam, "Grad-CAM heatmap"),
                             ("saliency", _saliency, "saliency map (input gradients)")):
        p = _command(sub, name, f"{what}: which pixels made the model choose a class",
                     f"Draw the {what} of a class over the image (default: the predicted class).",
                     func, f"cnnkit show {name} runs/mnist digit.png --class 3")
        p.add_argument("run", metavar="RUN", help="a run folder (--out of cnnkit train)")
        p.add_argument("image", metavar="IMAGE", help="an image file; resized to the model's input")
        p.add_argument("--class", dest="class_", metavar="C", default=None,
                       help="class name or index (default: the predicted class)")
        if name == "gradcam":
            p.add_argument("--layer", metavar="NAME", default=None,
                           help="conv layer (default: the last conv layer)")
        _out(p, f"{name}.png")

    p = _command(sub, "curves", "loss, accuracy and learning rate per epoch of a run",
                 "Draw the training curves (train and validation) from RUN/metrics.jsonl.",
                 _curves, "cnnkit show curves runs/mnist --out curves.png")
    p.add_argument("run", metavar="RUN", help="a run folder (--out of cnnkit train)")
    _out(p, "curves.png")

    p = _command(sub, "mistakes", "confusion matrix, per-class accuracy and worst mistakes",
                 "Evaluate a run on a dataset split and draw the most confident wrong "
                 "predictions (--out), the confusion matrix in counts and row-normalised, and "
                 "the per-class accuracy (written next to it as NAME-confusion.png, ...).",
                 _mistakes, "cnnkit show mistakes runs/mnist --data mnist --out mistakes.png")
    p.add_argument("run", metavar="RUN", help="a run folder (--out of cnnkit train)")
    p.add_argument("--data", required=True, metavar="DATA", help="a dataset path or name")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="which split to evaluate (default: test)")
    p.add_argument("--k", type=int, default=16, help="mistakes to show (default: 16)")
    _out(p, "mistakes.png")
