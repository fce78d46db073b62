"""The `lesde` command line: a thin dispatcher.

Each sub-command lives in ``lesde.commands.<name>`` and provides
``add_arguments(parser)`` and ``main(args) -> int``; modules are imported only when
their command runs, so ``lesde --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "separation": ("lesde.commands.separation", "separation phase transition (Theorems 2.1, 3.1)"),
    "data": ("lesde.commands.data", "inspect datasets (e.g. `lesde data show geomnist`)"),
    "train": ("lesde.commands.train", "train an ensemble of CNNs and record logit dynamics"),
    "run": ("lesde.commands.run", "run one of the paper's experiments end to end"),
    "figures": ("lesde.commands.figures", "draw the paper's figures for a run"),
    "report": ("lesde.commands.report", "write a self-contained HTML report for a run"),
    "sweep": ("lesde.commands.sweep", "run an experiment grid, locally or on Ray"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lesde",
        description="Locally elastic SDEs: simulate, train, estimate, imitate.",
    )
    from lesde import __version__

    parser.add_argument("--version", action="version", version=f"lesde {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = None
    if argv:
        wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == wanted:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_main=mod.main)
    return parser


def app(argv: list[str] | None = None) -> int:
    """Entry point of the `lesde` script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if getattr(args, "_main", None) is None:
        parser.print_help()
        return 2 if args.command is None else 1
    return int(args._main(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
