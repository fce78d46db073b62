"""`lesde separation`: the separation phase transition (Theorems 2.1, 3.1) and the
neural-collapse demo (Proposition 3.4).

Writes ``separation.json``/``separation.png`` and ``collapse.json``/``collapse.png``
under ``--out``. The default finishes in well under a minute on two cores; an
interrupted run resumes from ``separation.json`` when re-run with the same options.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lesde.commands._options import out_dir, positive_int, seed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=out_dir, default="runs/separation", help="output directory")
    parser.add_argument("--quick", action="store_true", help="a few-second smoke version")
    parser.add_argument(
        "--runs", type=positive_int, default=None, help="LE-SDE runs per grid point"
    )
    parser.add_argument(
        "--n-per-class", type=positive_int, default=None, help="particles per class"
    )
    parser.add_argument("--seed", type=seed, default=0, help="root seed")
    parser.add_argument("--no-collapse", action="store_true", help="skip the collapse demo")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lesde.experiments import collapse, separation

    overrides: dict = {"seed": args.seed}
    if args.runs is not None:
        overrides["n_runs"] = args.runs
    if args.n_per_class is not None:
        overrides["n_per_class"] = args.n_per_class
    from lesde.rundir import RunDirLock, check_out_dir

    cfg = (separation.Config.quick if args.quick else separation.Config)(**overrides)
    out = check_out_dir(Path(args.out))
    with RunDirLock(out):
        return _run(args, cfg, out, separation, collapse, tqdm)


def _run(args, cfg, out: Path, separation, collapse, tqdm) -> int:

    def progress(it):
        return tqdm(it, desc="separation sweeps", unit="point", disable=args.no_progress)

    table = separation.run(cfg, out, progress=progress)
    for part, name in (("a", "alpha-beta"), ("b", "s")):
        for curve in table[part]["curves"]:
            pairs = ", ".join(
                f"{x:g}:{f:.2f}" for x, f in zip(table[part]["x"], curve["fraction"], strict=True)
            )
            print(f"({part}) T={curve['horizon']:.0e}  {name}:fraction  {pairs}")
    print(f"wrote {out / 'separation.json'} and {out / 'separation.png'}")
    if not args.no_collapse:
        ccfg = collapse.Config(seed=args.seed)
        if args.quick:
            ccfg = collapse.Config(seed=args.seed, n_paths=10, n_steps=1000, n_per_class=30)
        res = collapse.run(ccfg, out)
        print(collapse.summary(res))
        print(f"wrote {out / 'collapse.json'} and {out / 'collapse.png'}")
    return 0
