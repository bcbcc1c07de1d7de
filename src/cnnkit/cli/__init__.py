"""The ``cnnkit`` command: thin wrappers that parse, call the public API, print, and exit.

Exit codes: 0 success, 2 bad usage or input (one-line error, no traceback unless ``--debug``),
1 internal error, 130 interrupted. Each sub-command lives in its own module, which defines
``add_parser(subparsers)``; the parser's ``func(args) -> int`` does the work.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from cnnkit.errors import CnnkitError, RoundingWarning

# One module per sub-command group, in the order ``cnnkit --help`` lists them.
COMMAND_MODULES = ("train", "evaluate", "predict", "lr_find", "finetune", "embed", "summary",
                   "models", "data", "show", "export", "serve", "report")


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors exit with code 2 and a one-line message."""

    def error(self, message):  # noqa: D401 - argparse hook
        self.print_usage(sys.stderr)
        self.exit(2, f"cnnkit: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnnkit", description="Build, train, inspect and serve CNNs.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"cnnkit.cli.{name}").add_parser(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """cnnkit's own warnings as one line, ``cnnkit: warning: ...``; others as Python shows them."""
    if issubclass(category, RoundingWarning):
        print(f"cnnkit: warning: {message}", file=sys.stderr if file is None else file)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        warnings.showwarning = _show_warning
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cnnkit: interrupted", file=sys.stderr)
        return 130
    except (CnnkitError, ValueError, TypeError, FileNotFoundError, NotADirectoryError,
            IsADirectoryError, PermissionError) as exc:
        if args.debug:
            raise
        print(f"cnnkit: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # an internal error: say so, keep the traceback for --debug
        if args.debug:
            raise
        print(f"cnnkit: internal error: {type(exc).__name__}: {exc} (run with --debug for the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
