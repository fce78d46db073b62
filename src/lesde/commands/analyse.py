"""`lesde analyse PATH`: the estimate → simulate → analyse → figures → report chain on any
training record (from `lesde train`, the Python trainer, or a run's ``train/``), or on an
``.npz`` of logits (``--logits FILE``; keys in `lesde.studies.analyse`).

Examples::

    lesde analyse runs/t                         # -> runs/t-analysis/report.html
    lesde analyse --logits my_logits.npz --out runs/mine
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lesde.commands._options import (
    add_overwrite,
    existing_dir,
    out_dir,
    print_summary,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", type=existing_dir, default=None,
                        help="a training record (a directory with meta.json)")  # fmt: skip
    parser.add_argument("--logits", default=None, metavar="FILE.npz",
                        help="an .npz of per-trial sample logits, labels and probe logits "
                        "instead of PATH (keys: sample_logits, sample_label, probe_logits, "
                        "probe_label, checkpoint_step; optional step, val_loss, val_acc, "
                        "class_names)")  # fmt: skip
    parser.add_argument("--out", type=out_dir, default=None,
                        help="run directory to write (default PATH-analysis, or "
                        "runs/analyse-NAME for --logits)")  # fmt: skip
    add_overwrite(parser)


def main(args: argparse.Namespace) -> int:
    from lesde.rundir import RunDirLock, check_identity, check_out_dir, wipe
    from lesde.studies.analyse import analyse

    if (args.path is None) == (args.logits is None):
        raise ValueError("give a record PATH or --logits FILE.npz (one of them)")
    if args.logits is not None and not Path(args.logits).is_file():
        raise FileNotFoundError(f"--logits {args.logits}: no such file")
    if args.out is not None:
        out = args.out
    elif args.path is not None:
        out = Path(f"{str(args.path).rstrip('/')}-analysis")
    else:
        out = Path("runs") / f"analyse-{Path(args.logits).stem}"
    source = str(Path(args.logits or args.path).resolve())
    out = check_out_dir(out)
    with RunDirLock(out):
        if args.overwrite:
            wipe(out)
        else:
            check_identity(out, experiment="analyse", config={"source": source})
        summary = analyse(args.path, out, logits=args.logits)
    print_summary(summary, "lesde analyse")
    print(f"open {out / 'report.html'}")
    return 0
