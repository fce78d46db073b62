"""`lesde figures RUN`: (re)draw every figure of a run directory, PNG and PDF."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory written by `lesde run`")
    parser.add_argument("--out", default=None, help="output directory (default RUN/figures)")


def main(args: argparse.Namespace) -> int:
    from lesde.figures import draw_figures

    try:
        paths = draw_figures(args.run, out=args.out)
    except FileNotFoundError as err:
        print(f"lesde figures: {err}", file=sys.stderr)
        return 1
    for p in paths:
        print(p)
    return 0
