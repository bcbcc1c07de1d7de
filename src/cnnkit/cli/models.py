"""``cnnkit models``: the registered architectures with their description and default size."""
from __future__ import annotations

import argparse
import json

from cnnkit.cli.zoo_catalog import ZOO


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the registered model names, what they are, and their default input size",
        description="List the architectures `cnnkit summary`, `cnnkit train` and "
                    "cnnkit.models.registry.create() know by name.",
    )
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # the zoo's table without importing the zoo (torch): cnnkit.cli.zoo_catalog
    entries = [{"name": name, "description": description, "default_input_size": list(size)}
               for name, size, description in ZOO]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    width = max((len(e["name"]) for e in entries), default=4)
    print(f"{'NAME'.ljust(width)}  {'INPUT':>7}  DESCRIPTION")
    for e in entries:
        height, w = e["default_input_size"]
        print(f"{e['name'].ljust(width)}  {f'{height}x{w}':>7}  {e['description']}")
    return 0
