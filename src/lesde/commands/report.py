"""`lesde report RUN`: write RUN/report.html (figures embedded; opens offline)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lesde.commands._options import existing_dir, out_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=existing_dir, help="run directory written by `lesde run`")
    parser.add_argument(
        "--out", type=out_file, default=None, help="output file (default RUN/report.html)"
    )
    parser.add_argument(
        "--no-figures", action="store_true", help="do not redraw figures that are missing"
    )


def main(args: argparse.Namespace) -> int:
    from lesde.figures import draw_figures
    from lesde.report import write_report

    run = Path(args.run)
    if not args.no_figures and not (run / "figures").is_dir():
        draw_figures(run)
    path = write_report(run, out=args.out)
    print(path)
    return 0
