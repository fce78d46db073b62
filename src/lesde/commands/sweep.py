"""`lesde sweep`: a grid p_err × seeds × datasets, locally or on a Ray cluster.

Examples::

    lesde sweep --p-err 0 0.333 0.667 --seeds 0 1 --out runs/sweep
    lesde sweep --datasets geomnist digits --ray auto      # on a running Ray cluster
"""

from __future__ import annotations

import argparse
import sys

from lesde.commands._options import (
    add_cifar_root,
    add_overwrite,
    fraction,
    out_dir,
    positive_int,
    seed,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from lesde.sweep import DATASETS

    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["geomnist"],
        choices=DATASETS,
        help="datasets of the grid (default: geomnist)",
    )
    parser.add_argument(
        "--p-err",
        nargs="+",
        type=fraction,
        default=[0.0, 1 / 3, 2 / 3],
        help="label-corruption fractions in [0, 1] (default: 0 1/3 2/3)",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=seed, default=[0], help="one run per seed (default: 0)"
    )
    parser.add_argument(
        "--scale",
        choices=("tiny", "default", "paper"),
        default="default",
        help="size of each point's run (default: default)",
    )
    parser.add_argument("--out", type=out_dir, default="runs/sweep", help="sweep directory")
    add_cifar_root(parser)
    parser.add_argument(
        "--ray",
        default=None,
        metavar="auto|ADDRESS",
        help="run the points as Ray tasks on this cluster (default: locally, in sequence)",
    )
    parser.add_argument("--cpus-per-point", type=positive_int, default=1, help="CPUs per Ray task")
    add_overwrite(parser)


def main(args: argparse.Namespace) -> int:
    from lesde.rundir import RunDirLock, check_out_dir, mismatch, read_summary, wipe
    from lesde.sweep import SweepConfig, run_sweep

    for flag, values in (("--p-err", args.p_err), ("--seeds", args.seeds),
                         ("--datasets", args.datasets)):  # fmt: skip
        dup = sorted({v for v in values if values.count(v) > 1})
        if dup:
            raise ValueError(f"{flag}: each value once, got {', '.join(map(str, dup))} twice")
    cfg = SweepConfig(
        datasets=tuple(args.datasets),
        p_errs=tuple(args.p_err),
        seeds=tuple(args.seeds),
        scale=args.scale,
        cifar_root=args.cifar_root,
        cpus_per_point=args.cpus_per_point,
    )
    out = check_out_dir(args.out)
    with RunDirLock(out):
        if args.overwrite:
            wipe(out)
        else:
            # a sweep may grow (more p_err, seeds, datasets) but keeps its scale; each
            # point's training record checks its own configuration
            stored = read_summary(out / "summary.json") if (out / "summary.json").exists() else {}
            diffs = []
            if stored.get("experiment", "sweep") != "sweep":
                diffs.append(f"experiment: {stored['experiment']!r} → 'sweep'")
            old_scale = stored.get("config", {}).get("scale", cfg.scale)
            if old_scale != cfg.scale:
                diffs.append(f"scale: {old_scale!r} → {cfg.scale!r}")
            if diffs:
                raise mismatch(out, diffs, what="sweep")
        try:
            table = run_sweep(cfg, out, ray_address=args.ray)
        except ConnectionError as err:
            print(f"lesde sweep: {err}", file=sys.stderr)
            return 2
    from lesde.sweep import did_not_learn, not_learned, not_learned_note

    for r in table["rows"]:
        acc = r["key"].get("val_acc_final")
        acc_s = f"{acc:.3f}" if isinstance(acc, float) else "—"
        flag = "  DID NOT LEARN" if did_not_learn(r) else ""
        print(f"{r['dataset']:9s} p_err={r['p_err']:.3f} seed={r['seed']}  val_acc={acc_s}{flag}")
    if not_learned(table["rows"]):
        print(not_learned_note(table["rows"]))
    print(f"wrote {args.out}/sweep.json and {args.out}/report.html ({table['seconds']:.0f} s)")
    return 0
