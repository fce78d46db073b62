"""Argument types and options shared by the commands: every flag checked as it is parsed.

An argparse ``type=`` function that raises `argparse.ArgumentTypeError` makes the
parser report ``argument --trials: must be a positive int, got 0``, naming the flag as
the user typed it, before any work starts. `OneLineParser` prints that as one line
(``lesde COMMAND: ...``) with exit status 2, instead of argparse's usage block.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import NoReturn

__all__ = [
    "OneLineParser",
    "positive_int",
    "nonneg_int",
    "seed",
    "fraction",
    "positive_float",
    "nonneg_float",
    "out_dir",
    "out_file",
    "existing_dir",
    "add_overwrite",
    "add_cifar_root",
    "print_key_numbers",
    "print_summary",
]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An int >= 1."""
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {v}")
    return v


def nonneg_int(text: str) -> int:
    """An int >= 0."""
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {v}")
    return v


def seed(text: str) -> int:
    """A seed: an int in [0, 2**32) (numpy's SeedSequence takes no negatives)."""
    v = _int(text)
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2^32), got {v}")
    return v


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return v


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    v = _float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {v:g}")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0."""
    v = _float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {v:g}")
    return v


def nonneg_float(text: str) -> float:
    """A finite number >= 0."""
    v = _float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v:g}")
    return v


def out_dir(text: str) -> Path:
    """A directory to write: not an existing file (created later, when work starts)."""
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: expected a directory, found a file")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text}: {parent} is a file")
            break
    return p


def out_file(text: str) -> Path:
    """A file to write: not an existing directory."""
    p = Path(text)
    if p.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: expected a file name, found a directory")
    return p


def existing_dir(text: str) -> Path:
    """A directory that exists."""
    p = Path(text)
    if not p.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such directory")
    if not p.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: expected a directory, found a file")
    return p


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start the output directory afresh when it holds a different run "
        "(deletes what lesde wrote there)",
    )


def add_cifar_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cifar-root",
        default=None,
        help="directory with cifar-10-batches-py/ or -bin/ (default: $LESDE_DATA)",
    )


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple) and all(isinstance(x, float) for x in v):
        return "[" + ", ".join(f"{x:.4g}" for x in v) + "]"
    return str(v)


def print_summary(summary, prog: str) -> None:
    """A run's headline (what it measured and what the fitted LE-SDE predicts) and key
    numbers on stdout, its warnings and caveats on stderr.

    Args:
        summary: a `lesde.experiments.summary.RunSummary`.
        prog: the command, naming the warnings (``lesde run geomnist``).
    """
    if summary.headline:
        print("headline:")
        for v in summary.headline:
            print(f"  {v.line()}")
        print("key numbers:")
    print_key_numbers(summary.key.to_json())
    for note in summary.notes:
        if note.startswith(("WARNING", "CAVEAT")):
            print(f"{prog}: {note}", file=sys.stderr)


def print_key_numbers(key: dict) -> None:
    """Key numbers on stdout, one per line (intervals as [lo, hi])."""
    for k, v in key.items():
        print(f"  {k}: {_fmt(v)}")
