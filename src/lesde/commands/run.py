"""`lesde run NAME`: one of the paper's experiments end to end, resumable.

Writes a run directory (``--out``, default ``runs/NAME``) with ``summary.json``, the
figures (PNG and PDF) and ``report.html``. Re-running the same command after an
interruption resumes: finished stages are skipped, training continues from its store.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lesde.experiments.registry import EXPERIMENTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        choices=sorted(EXPERIMENTS),
        help="; ".join(f"{k}: {v[1]}" for k, v in EXPERIMENTS.items()),
    )
    parser.add_argument("--out", default=None, help="run directory (default runs/NAME)")
    parser.add_argument(
        "--scale",
        choices=("tiny", "default", "paper"),
        default="default",
        help="problem size: tiny (seconds), default (minutes), paper (the paper's counts)",
    )
    parser.add_argument("--seed", type=int, default=0, help="root seed")
    parser.add_argument(
        "--cifar-root",
        default=None,
        help="directory with cifar-10-batches-py/ or -bin/ (default: $LESDE_DATA)",
    )


def build_config(name: str, args: argparse.Namespace):
    """The experiment's Config from the command-line options."""
    from lesde.experiments.registry import get

    mod = get(name)
    if name == "separation":
        quick = args.scale == "tiny"
        return (mod.Config.quick if quick else mod.Config)(seed=args.seed)
    kwargs = {"scale": args.scale, "seed": args.seed}
    if name == "cifar":
        kwargs["root"] = args.cifar_root
    return mod.Config(**kwargs)


def main(args: argparse.Namespace) -> int:
    from lesde.experiments.registry import get

    name = args.name
    out = Path(args.out or f"runs/{name}")
    try:
        cfg = build_config(name, args)
    except (TypeError, ValueError) as err:
        print(f"lesde run {name}: {err}", file=sys.stderr)
        return 2
    mod = get(name)
    t = time.perf_counter()
    print(f"lesde run {name} (scale {args.scale}) -> {out}")
    try:
        if name == "separation":
            mod.run(cfg, out)
        else:
            summary = mod.run(cfg, out)
            for k, v in (summary.get("key") or {}).items():
                print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")
    except FileNotFoundError as err:
        print(f"lesde run {name}: {err}", file=sys.stderr)
        return 1
    print(f"done in {time.perf_counter() - t:.0f} s; open {out / 'report.html'}")
    return 0
