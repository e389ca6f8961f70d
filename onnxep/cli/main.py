"""``onnxep`` command: demo, run, partition, providers, verify, bench."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from onnxep.errors import OnnxepError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from onnxep.cli import demo, inspect_cmds, verify_cmd

    parser = argparse.ArgumentParser(
        prog="onnxep", description="Run ONNX models across pluggable execution providers."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo.add_parser(sub)
    inspect_cmds.add_parsers(sub)
    verify_cmd.add_parser(sub)
    try:
        from onnxep.cli import bench
    except ImportError as exc:  # the benchmark extra may be missing
        reason = f"onnxep bench is unavailable: {exc}"
        unavailable = sub.add_parser("bench", help=f"({reason})")
        unavailable.set_defaults(func=lambda _args: _fail(reason))
    else:
        bench.add_parser(sub)
    return parser


def _fail(message: str) -> int:
    print(f"onnxep: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``onnxep`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.formatwarning = lambda msg, cat, *_a, **_k: f"warning: {msg}\n"
        try:
            return int(args.func(args) or 0)
        except OnnxepError as exc:
            return _fail(exc.detail)
        except (FileNotFoundError, ValueError) as exc:
            return _fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
