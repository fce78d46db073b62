"""`lesde run NAME`: one of the paper's experiments end to end, resumable.

Writes a run directory (``--out``, default ``runs/NAME``) with ``summary.json``, the
figures (PNG and PDF) and ``report.html``. Re-running the same command after an
interruption resumes: finished stages are skipped, training continues from its store.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lesde.commands._options import (
    add_cifar_root,
    add_overwrite,
    out_dir,
    positive_int,
    print_summary,
    seed,
)
from lesde.studies.registry import EXPERIMENTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        choices=sorted(EXPERIMENTS),
        help="; ".join(f"{k}: {v[1]}" for k, v in EXPERIMENTS.items()),
    )
    parser.add_argument(
        "--out", type=out_dir, default=None, help="run directory (default runs/NAME)"
    )
    parser.add_argument(
        "--scale",
        choices=("tiny", "default", "paper"),
        default="default",
        help="problem size: tiny (seconds), default (minutes), paper (the paper's counts)",
    )
    parser.add_argument("--seed", type=seed, default=0, help="root seed")
    parser.add_argument(
        "--trials", type=positive_int, default=None,
        help="trials per run (per point of a sweep); default: the scale's (geomnist, label-noise)",
    )  # fmt: skip
    parser.add_argument(
        "--steps", type=positive_int, default=None,
        help="SGD steps per trial; default: the scale's (geomnist, label-noise)",
    )  # fmt: skip
    add_cifar_root(parser)
    parser.add_argument(
        "--ray", default=None, metavar="auto|ADDRESS",
        help="paper: run the sub-runs as Ray tasks on this cluster (default: locally)",
    )  # fmt: skip
    add_overwrite(parser)


def build_config(name: str, args: argparse.Namespace):
    """The experiment's Config from the command-line options."""
    from lesde.studies.registry import get

    mod = get(name)
    if name == "separation":
        quick = args.scale == "tiny"
        return (mod.Config.quick if quick else mod.Config)(seed=args.seed)
    kwargs = {"scale": args.scale, "seed": args.seed}
    if name in ("cifar", "paper"):
        kwargs["root" if name == "cifar" else "cifar_root"] = args.cifar_root
    for flag, field in (("trials", "n_trials"), ("steps", "n_steps")):
        value = getattr(args, flag, None)
        if value is None:
            continue
        if field not in mod.Config.__dataclass_fields__:
            raise ValueError(f"--{flag} is not an option of `lesde run {name}`")
        kwargs[field] = value
    return mod.Config(**kwargs)


def main(args: argparse.Namespace) -> int:
    from lesde.rundir import RunDirLock, check_identity, check_out_dir, wipe
    from lesde.store import jsonable
    from lesde.studies.registry import get

    name = args.name
    out = Path(args.out or f"runs/{name}")
    cfg = build_config(name, args)  # a bad option raises before anything is written
    mod = get(name)
    stored_cfg = {"separation": jsonable(cfg)} if name == "separation" else jsonable(cfg)
    if name == "paper":  # a CIFAR copy given later completes the same run
        stored_cfg = {"scale": cfg.scale, "seed": cfg.seed}
    out = check_out_dir(out)
    with RunDirLock(out):
        if args.overwrite:
            wipe(out)
        else:
            check_identity(out, experiment=name, config=stored_cfg)
        t = time.perf_counter()
        print(f"lesde run {name} (scale {args.scale}) -> {out}")
        if name == "paper":
            mod.run(cfg, out, ray_address=args.ray)
        elif name == "separation":
            from lesde.studies.runner import run_separation

            print(run_separation(cfg, out, tiny=args.scale == "tiny").key.extra["collapse"])
        else:
            print_summary(mod.run(cfg, out), f"lesde run {name}")
    print(f"done in {time.perf_counter() - t:.0f} s; open {out / 'report.html'}")
    return 0
