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

from lesde.commands._options import add_overwrite, out_dir, positive_int, seed
from lesde.experiments.registry import EXPERIMENTS


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
    parser.add_argument(
        "--cifar-root",
        default=None,
        help="directory with cifar-10-batches-py/ or -bin/ (default: $LESDE_DATA)",
    )
    add_overwrite(parser)


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
    for flag, field in (("trials", "n_trials"), ("steps", "n_steps")):
        value = getattr(args, flag, None)
        if value is None:
            continue
        if field not in mod.Config.__dataclass_fields__:
            raise ValueError(f"--{flag} is not an option of `lesde run {name}`")
        kwargs[field] = value
    return mod.Config(**kwargs)


def main(args: argparse.Namespace) -> int:
    from lesde.experiments.registry import get
    from lesde.rundir import RunDirLock, check_identity, check_out_dir, wipe
    from lesde.store import jsonable

    name = args.name
    out = Path(args.out or f"runs/{name}")
    cfg = build_config(name, args)  # a bad option raises before anything is written
    mod = get(name)
    stored_cfg = {"separation": jsonable(cfg)} if name == "separation" else jsonable(cfg)
    out = check_out_dir(out)
    with RunDirLock(out):
        if args.overwrite:
            wipe(out)
        else:
            check_identity(out, experiment=name, config=stored_cfg)
        t = time.perf_counter()
        print(f"lesde run {name} (scale {args.scale}) -> {out}")
        if name == "separation":
            _run_separation(mod, cfg, out, tiny=args.scale == "tiny")
        else:
            summary = mod.run(cfg, out)
            for k, v in (summary.get("key") or {}).items():
                print(f"  {k}: {_fmt(v)}")
            for note in summary.get("notes") or []:
                if note.startswith("WARNING"):
                    print(f"lesde run {name}: {note}", file=sys.stderr)
    print(f"done in {time.perf_counter() - t:.0f} s; open {out / 'report.html'}")
    return 0


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple) and all(isinstance(x, float) for x in v):
        return "[" + ", ".join(f"{x:.4g}" for x in v) + "]"
    return str(v)


def _run_separation(mod, cfg, out: Path, *, tiny: bool) -> None:
    """The theorem experiments (core module) plus the collapse demo, a summary and report."""
    import shutil

    from lesde.experiments import collapse
    from lesde.report import write_report
    from lesde.rundir import load_summary, write_json_atomic

    table = mod.run(cfg, out)
    ccfg = collapse.Config(seed=cfg.seed)
    if tiny:
        ccfg = collapse.Config(seed=cfg.seed, n_paths=10, n_steps=1000, n_per_class=30)
    res = collapse.run(ccfg, out)
    key: dict = {}
    for part, name in (("a", "α−β"), ("b", "s")):
        xs = table[part]["x"]
        curve = table[part]["curves"][-1]  # the longest horizon
        key[f"({part}) separable fraction at {name}={xs[0]:g}"] = curve["fraction"][0]
        key[f"({part}) separable fraction at {name}={xs[-1]:g}"] = curve["fraction"][-1]
    rows = table.get("c", {}).get("rows", [])
    for r in rows:
        key[f"(c) r̂_γ {r['model']}-model at s={r['s']:g}"] = (
            f"{r['s_hat']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]: {r['verdict']} "
            f"(simulated: {r['fraction']:.0%} separable)"
        )
    if rows:
        key["(c) verdicts matching the simulated separability"] = (
            f"{sum(r['verdict_matches'] for r in rows)}/{len(rows)}"
        )
    rows_d = table.get("d", {}).get("rows", [])
    for r in rows_d:
        key[f"(d) margin-to-noise exponent at c/K={r['c_over_k']:g}, q={r['q']:g}"] = (
            f"{r['slope']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] (true {r['expected']:.3f}): "
            f"{r['verdict']} (simulated: {r['fraction']:.0%} separable; "
            f"tail index {r['s_hat']:.3f})"
        )
    if rows_d:
        key["(d) verdicts matching the simulated separability"] = (
            f"{sum(r['verdict_matches'] for r in rows_d)}/{len(rows_d)}"
        )
    key["collapse"] = collapse.summary(res)
    summary = load_summary(out)
    summary.update(experiment="separation", config={"separation": table["config"]}, key=key)
    write_json_atomic(out / "summary.json", summary)
    (out / "figures").mkdir(exist_ok=True)
    for n in ("separation", "collapse"):
        if (out / f"{n}.png").exists():
            shutil.copyfile(out / f"{n}.png", out / "figures" / f"{n}.png")
    write_report(out)
    print(collapse.summary(res))
