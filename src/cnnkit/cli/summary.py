"""``cnnkit summary MODEL --input 32x32x3``: the layer table of a registry model or a spec string."""
from __future__ import annotations

import argparse
import json

from cnnkit._checks import check_positive_int, parse_input_shape


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "summary",
        help="print a model's layers: output volume, parameters, MACs, receptive field",
        description="Print every layer of a model with its output volume (HxWxD), parameters "
                    "(trainable/frozen), multiply-adds and the receptive field and effective "
                    "stride of its units on the input image, then the totals.",
        epilog="examples:\n  cnnkit summary lenet5 --input 28x28x1\n"
               "  cnnkit summary \"conv(32,3) relu maxpool(2) fc(10)\" --input 28x28x1 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL",
                        help="a registered model name (see `cnnkit models`) or an architecture "
                             "spec string such as \"conv(6,5) relu maxpool(2) fc(10)\"")
    parser.add_argument("--input", metavar="HxWxC", default=None,
                        help="input image size, e.g. 32x32x3 (default: the registry model's "
                             "default size and 3 channels; required for a spec string)")
    parser.add_argument("--num-classes", type=int, default=10, metavar="N",
                        help="number of output classes (default: 10)")
    parser.add_argument("--depth", type=int, default=None, metavar="D",
                        help="merge the layers inside each module below depth D into one row")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--rounding", choices=("warn", "floor", "strict"), default="warn",
                        help="a spec's layers when O = (W - K + 2P)/S + 1 is not an integer: "
                             "round down with a warning (default), silently, or refuse")
    parser.set_defaults(func=run)


def build_model(model: str, input_shape: str | None, num_classes: int,
                rounding: str = "warn"):
    """A registry model by name, else a cnnkit Sequential from an architecture spec string.

    Raises:
        ValueError: ``model`` is neither a registered name nor a valid spec, or a spec without
            ``--input``.
    """
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.models import registry  # lazy: the CLI module list is imported at start-up

    check_positive_int(num_classes, "--num-classes")
    if model in registry.names():
        if input_shape is None:
            return registry.create(model, num_classes=num_classes)
        channels, height, width = parse_input_shape(input_shape, "--input")
        return registry.create(model, num_classes=num_classes, in_channels=channels,
                               input_size=(height, width))
    if input_shape is None:
        raise ValueError(f"MODEL {model!r} is not a registered model name (see `cnnkit models`); "
                         "to read it as an architecture spec string, also give --input HxWxC, "
                         "e.g. --input 28x28x1")
    # import cost: the CLI starts in 0.2 s, importing all of cnnkit takes 6 s
    from cnnkit.models.sequential import Sequential
    from cnnkit.models.spec import SpecError, parse_spec

    try:
        parse_spec(model, num_classes=num_classes, image_input=True)
    except SpecError as error:
        raise ValueError(f"MODEL {model!r} is neither a registered model name (see `cnnkit "
                         f"models`) nor a valid architecture spec: {error}") from error
    # a valid spec whose shapes or size fail says so itself (a SpecError at the layer)
    return Sequential.from_spec(model, input_shape, num_classes=num_classes, rounding=rounding)


def run(args: argparse.Namespace) -> int:
    from cnnkit.inspect.summary import summary  # import cost: torch, only when run

    model = build_model(args.model, args.input, args.num_classes, args.rounding)
    result = summary(model, args.input, depth=args.depth)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    return 0
