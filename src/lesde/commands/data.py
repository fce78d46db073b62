"""`lesde data`: look at the datasets.

Examples::

    lesde data show geomnist --out geomnist.png --n 8      # paper Fig. 2
    lesde data show digits --classes 0 1 2
    lesde data show cifar10 --cifar-root ~/data             # or LESDE_DATA=~/data
    lesde data info geomnist --n 100                         # shapes, provenance (JSON)

Exit status: 0 done, 2 data not found or invalid options.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lesde.commands._options import add_cifar_root, nonneg_int, out_file, positive_int, seed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from lesde.data.registry import available

    parser.add_argument("action", choices=("show", "info"), help="show: PNG grid; info: JSON")
    parser.add_argument("name", choices=available(), help="dataset")
    parser.add_argument(
        "--out", type=out_file, default=None, help="PNG file (default: NAME_samples.png)"
    )
    parser.add_argument("--n", type=positive_int, default=8, help="samples per class (default 8)")
    parser.add_argument("--seed", type=seed, default=0, help="data seed (default 0)")
    parser.add_argument(
        "--classes", type=nonneg_int, nargs="+", default=None,
        help="class subset (digits, cifar10)",
    )  # fmt: skip
    add_cifar_root(parser)


def _options(args: argparse.Namespace) -> dict:
    opts: dict = {"seed": args.seed}
    if args.name == "geomnist":
        opts.update(n_train=args.n, n_val=0)
    elif args.name == "cifar10":
        opts.update(root=args.cifar_root, n_train=args.n, n_val=0)
    else:
        opts.update(n_train=args.n)
    if args.classes is not None:
        if args.name == "geomnist":
            raise ValueError("--classes applies to digits and cifar10, not geomnist")
        opts["classes"] = tuple(args.classes)
    return opts


def main(args: argparse.Namespace) -> int:
    from lesde.data import load

    data = load(args.name, **_options(args))
    if args.action == "info":
        info = {
            "x_train": list(data.x_train.shape),
            "x_val": list(data.x_val.shape),
            "class_names": list(data.class_names),
            "provenance": data.provenance,
        }
        print(json.dumps(info, indent=2))
        return 0

    import matplotlib.pyplot as plt

    from lesde.plots.data import plot_samples

    out = Path(args.out or f"{args.name}_samples.png")
    ax = plot_samples(
        data.x_train, data.y_train, data.class_names, n_per_class=args.n, title=args.name
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    ax.figure.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(ax.figure)
    print(out)
    return 0
