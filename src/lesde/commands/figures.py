"""`lesde figures RUN`: (re)draw every figure of a run directory, PNG and PDF."""

from __future__ import annotations

import argparse

from lesde.commands._options import existing_dir, out_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=existing_dir, help="run directory written by `lesde run`")
    parser.add_argument(
        "--out", type=out_dir, default=None, help="output directory (default RUN/figures)"
    )


def main(args: argparse.Namespace) -> int:
    from lesde.figures import draw_figures

    paths = draw_figures(args.run, out=args.out)
    for p in paths:
        print(p)
    return 0
