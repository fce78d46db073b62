"""`lesde report RUN`: write RUN/report.html (figures embedded; opens offline)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory written by `lesde run`")
    parser.add_argument("--out", default=None, help="output file (default RUN/report.html)")
    parser.add_argument(
        "--no-figures", action="store_true", help="do not redraw figures that are missing"
    )


def main(args: argparse.Namespace) -> int:
    from lesde.figures import draw_figures
    from lesde.report import write_report

    run = Path(args.run)
    try:
        if not args.no_figures and not (run / "figures").is_dir():
            draw_figures(run)
        path = write_report(run, out=args.out)
    except FileNotFoundError as err:
        print(f"lesde report: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0
