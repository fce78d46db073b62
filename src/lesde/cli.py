"""The `lesde` command line: a thin dispatcher.

Each sub-command lives in ``lesde.commands.<name>`` and provides
``add_arguments(parser)`` and ``main(args) -> int``; modules are imported only when
their command runs, so ``lesde --help`` stays fast.

Errors: a bad flag is reported by the parser as one line naming it (the argument types
of `lesde.commands._options`). The expected failures of the work itself (a bad value or
path, a permission, an unsafe pickle, a corrupt file, missing data, a held lock, a run
directory that holds another run) are caught here and printed as one line
``lesde COMMAND: message`` on stderr, exit status 2, no traceback; ``--debug`` (anywhere
on the command line) shows the traceback instead. A closed pipe (``lesde data info … |
head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "separation": ("lesde.commands.separation", "separation phase transition (Theorems 2.1, 3.1)"),
    "data": ("lesde.commands.data", "inspect datasets (e.g. `lesde data show geomnist`)"),
    "train": ("lesde.commands.train", "train an ensemble of CNNs and record logit dynamics"),
    "run": ("lesde.commands.run", "run one of the paper's experiments end to end"),
    "figures": ("lesde.commands.figures", "draw the paper's figures for a run"),
    "report": ("lesde.commands.report", "write a self-contained HTML report for a run"),
    "sweep": ("lesde.commands.sweep", "run an experiment grid, locally or on Ray"),
    "analyse": ("lesde.commands.analyse", "estimate, simulate, analyse and report any record"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    from lesde.commands._options import OneLineParser

    parser = OneLineParser(
        prog="lesde",
        description="Locally elastic SDEs: simulate, train, estimate, imitate.",
    )
    from lesde import __version__

    parser.add_argument("--version", action="version", version=f"lesde {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
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


def _expected_errors() -> tuple[type[BaseException], ...]:
    from lesde.data._unpickle import UnsafePickleError
    from lesde.rundir import LockHeldError, RunMismatchError
    from lesde.store import CorruptRunError, IncompleteRunError

    return (
        ValueError,  # bad values, RunMismatchError, invalid JSON
        TypeError,
        OSError,  # missing files, permissions, a file where a directory is expected
        EOFError,  # truncated pickles / npz
        ImportError,  # an optional extra (Ray) or a user's module that is missing
        UnsafePickleError,
        LockHeldError,
        RunMismatchError,
        CorruptRunError,
        IncompleteRunError,
    )


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{err.filename}: {text}"
    return text


def app(argv: list[str] | None = None) -> int:
    """Entry point of the `lesde` script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a flag the parser refused
        return int(stop.code or 0)
    if getattr(args, "_main", None) is None:
        parser.print_help()
        return 2 if args.command is None else 1
    import warnings

    plain = warnings.formatwarning
    if not debug:  # warnings as one line each, named by the command
        warnings.formatwarning = lambda msg, cat, *a, **k: (
            f"lesde {args.command}: warning: {' '.join(str(msg).split())}\n"
        )
    try:
        return int(args._main(args) or 0)
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, and keep Python's exit-time flush
        # of stdout from raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"lesde {args.command}: interrupted", file=sys.stderr)
        return 130
    except _expected_errors() as err:
        if debug:
            traceback.print_exc()
        else:
            print(f"lesde {args.command}: {_one_line(err)}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = plain


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
