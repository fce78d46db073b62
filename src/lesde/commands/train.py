"""`lesde train`: train an ensemble of CNNs by batch-size-1 SGD and record its dynamics.

Example::

    lesde train --data geomnist --trials 100 --steps 10000 --seed 0 --out runs/geo
    lesde train --resume runs/geo          # after a kill: continues from the last chunk

The run directory is a `lesde.store` run; open it with ``lesde.open_run(path)``.
``--data`` takes a dataset name of `lesde.data.load` or a ``.npz`` file with
``x_train, y_train, x_val, y_val, class_names``. Exit status: 0 done, 2 bad options,
3 diverged (non-finite loss; data so far kept, run marked diverged).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lesde.commands._options import (
    add_cifar_root,
    add_overwrite,
    existing_dir,
    fraction,
    nonneg_float,
    nonneg_int,
    out_dir,
    positive_float,
    positive_int,
    seed,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="geomnist", help="dataset name or .npz file")
    parser.add_argument(
        "--model",
        default=None,
        metavar="MODULE:FUNCTION",
        help="train any nn.Module: 'package.module:function' or 'file.py:function' returning "
        "one network (backend 'func'); default: the paper's CNN (backend 'cnn')",
    )
    parser.add_argument("--momentum", type=nonneg_float, default=0.0,
                        help="SGD momentum (--model only; paper: 0)")  # fmt: skip
    parser.add_argument("--weight-decay", type=nonneg_float, default=0.0,
                        help="SGD weight decay (--model only; paper: 0)")  # fmt: skip
    parser.add_argument("--feature-module", default=None, metavar="NAME",
                        help="submodule whose output is recorded as the probes' features "
                        "(--model with --record-features)")  # fmt: skip
    parser.add_argument("--trials", type=positive_int, default=100, help="independent networks")
    parser.add_argument("--steps", type=positive_int, default=10_000, help="SGD steps per trial")
    parser.add_argument("--seed", type=seed, default=0, help="root seed (data, init, samples)")
    parser.add_argument("--out", type=out_dir, default=None, help="run directory to create")
    parser.add_argument(
        "--resume",
        type=existing_dir,
        default=None,
        metavar="RUN",
        help="continue the unfinished run RUN (its saved options are used)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument(
        "--lr", type=positive_float, default=0.005, help="SGD step size (paper: 0.005)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=1, help="samples per step (paper: 1)"
    )
    parser.add_argument(
        "--sampling",
        choices=("balanced", "uniform", "stratified"),
        default="balanced",
        help="how samples are drawn (see TrainConfig)",
    )
    parser.add_argument("--checkpoints", type=positive_int, default=50, help="probe evaluations")
    parser.add_argument("--schedule", choices=("log", "linear"), default="log")
    parser.add_argument("--p-err", type=fraction, default=0.0, help="label corruption fraction")
    parser.add_argument(
        "--n-per-class",
        type=positive_int,
        default=None,
        help="training samples per class (loader default if omitted)",
    )
    parser.add_argument(
        "--n-val-per-class",
        type=positive_int,
        default=None,
        help="validation samples per class (loader default if omitted)",
    )
    parser.add_argument(
        "--classes", type=nonneg_int, nargs="+", default=None, metavar="C",
        help="class subset of digits / cifar10 (e.g. --classes 0 1 2 3 4 5 6 7 8 9)",
    )  # fmt: skip
    parser.add_argument(
        "--probe-per-class",
        type=positive_int,
        default=16,
        help="probes per class from train and from val",
    )
    parser.add_argument(
        "--n-val",
        type=positive_int,
        default=None,
        help="validation samples used for val_loss/val_acc (default: all)",
    )
    parser.add_argument(
        "--le-steps",
        type=positive_int,
        nargs="*",
        default=None,
        metavar="M",
        help="steps of the direct local-elasticity measurement (default: --n-le-steps log-spaced)",
    )
    parser.add_argument(
        "--n-le-steps",
        type=nonneg_int,
        default=8,
        help="log-spaced direct-LE steps when --le-steps is not given",
    )
    parser.add_argument("--le-model", choices=("I", "L"), default="I", help="H of direct LE")
    parser.add_argument(
        "--record-features",
        action="store_true",
        help="also record the probes' penultimate features",
    )
    parser.add_argument(
        "--chunk-steps",
        type=positive_int,
        default=500,
        help="steps per written chunk (resume granularity)",
    )
    add_cifar_root(parser)
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch CPU threads (= parallel blocks of trials)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_overwrite(parser)


def main(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from lesde._progress import progress_bar
    from lesde.rundir import RunDirLock, check_out_dir, wipe
    from lesde.store import read_json, run_status
    from lesde.train import TrainingDiverged, run_training
    from lesde.train.recorder import log_steps

    if args.resume is not None and args.out is not None:
        raise ValueError("--resume RUN continues RUN with its saved options; drop --out")
    if args.resume is None and args.out is None:
        raise ValueError("--out is required (or --resume RUN)")
    if args.le_steps and args.batch_size != 1:
        raise ValueError(
            f"--le-steps: the direct local-elasticity measurement needs --batch-size 1, "
            f"got --batch-size {args.batch_size}"
        )
    if args.le_steps and max(args.le_steps) > args.steps:
        raise ValueError(f"--le-steps must be <= --steps {args.steps}, got {max(args.le_steps)}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.resume is not None:
        out = args.resume
        status = run_status(out)
        if status == "missing" and not (out / "config.json").exists():
            raise FileNotFoundError(f"--resume {out}: not a lesde run (no meta.json)")
        stored = read_json(out / "config.json")
        if "train" not in stored:
            what = (
                "a `lesde.Recorder` record" if "recorder" in stored else "not a `lesde train` run"
            )
            raise ValueError(
                f"--resume {out}: {what}; `lesde train` resumes only its own runs"
                + (" (rerun your training loop with the same Recorder arguments: it continues "
                   "from the last written chunk)" if "recorder" in stored else "")
            )  # fmt: skip
        saved = stored["train"]
        done = 0
        if status == "running":
            done = int(read_json(out / "meta.json").get("steps_done", 0))
        elif status in ("complete", "diverged"):
            from lesde.store import CorruptRunError, verify_record

            try:
                verify_record(out)
            except CorruptRunError as err:
                print(f"lesde train: {err}", file=sys.stderr)  # then repaired below
            else:
                print(f"lesde train: --resume {out}: run is {status}, nothing to resume")
                return 0
        total, initial = saved["n_trials"] * saved["n_steps"], saved["n_trials"] * done
        n_trials = saved["n_trials"]
        cfg = None
        data, options = None, None
    else:
        out = args.out
        if args.le_steps is not None:
            le = tuple(args.le_steps)
        else:
            le = log_steps(args.steps, args.n_le_steps) if args.batch_size == 1 else ()
            if args.batch_size != 1 and args.n_le_steps > 0:
                print("lesde train: note: the direct local-elasticity measurement needs "
                      "--batch-size 1; it is not recorded", file=sys.stderr)  # fmt: skip
        try:
            cfg = _train_config(args, le)
        except ValueError as err:  # name the flags, not the config attributes
            raise ValueError(_flags(str(err))) from None
        if args.model:
            from lesde.train.backends import resolve_model

            resolve_model(args.model)  # an import error is reported before any work
        data = args.data
        options: dict = {"seed": args.seed}
        if args.n_per_class is not None:
            options["n_train"] = args.n_per_class
        if args.n_val_per_class is not None:
            options["n_val"] = args.n_val_per_class
        if args.cifar_root is not None:
            options["root"] = args.cifar_root
        if args.classes is not None:
            if args.data not in ("digits", "cifar10"):
                raise ValueError(f"--classes applies to digits and cifar10, not {args.data!r}")
            options["classes"] = tuple(args.classes)
        if data.endswith(".npz"):
            if not Path(data).is_file():
                raise FileNotFoundError(f"--data {data}: no such file")
            options = {}
        total, initial, n_trials = args.trials * args.steps, 0, args.trials

    # the bar appears with the first trained steps, not while data loads or input is
    # checked (an error there should be the only thing printed)
    bars: list = []

    def progress(n: int) -> None:
        if not bars:
            if args.no_progress:
                bars.append(tqdm(total=total, disable=True))
            else:  # a bar in a terminal, plain lines in a log file
                bar = progress_bar(total, initial=initial, unit="trial-step", unit_scale=True,
                                   smoothing=0.05, desc="train")  # fmt: skip
                bars.append(bar)
        bars[0].update(n * n_trials)

    def close_bar() -> None:
        if bars:
            bars[0].close()

    out = check_out_dir(out, flag="--resume" if args.resume is not None else "--out")
    trained = []  # the progress callback fires only when steps are trained

    def progress_and_mark(n: int) -> None:
        trained.append(n)
        progress(n)

    try:
        with RunDirLock(out, flag="--resume" if args.resume is not None else "--out"):
            if cfg is not None and run_status(out) != "missing":
                if args.overwrite:
                    wipe(out)
                elif run_status(out) == "running":
                    raise ValueError(
                        f"--out {out} holds an unfinished run; continue it with "
                        f"`lesde train --resume {out}`, or pass --overwrite to start afresh"
                    )
            ds = run_training(
                out,
                cfg,
                data=data or "geomnist",
                data_options=options,
                progress=progress_and_mark,
            )
    except TrainingDiverged as err:
        close_bar()
        print(f"lesde train: diverged: {err} (run {out} marked diverged)", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        close_bar()
        print(f"lesde train: interrupted; continue with `lesde train --resume {out}`",
              file=sys.stderr)  # fmt: skip
        return 130
    except BaseException:
        close_bar()
        raise
    close_bar()
    acc = ds["val_acc"].values[:, -1]
    what = "wrote" if trained else "nothing to train: already complete,"
    print(
        f"{what} {out}: {ds.sizes['trial']} trials × {ds.sizes['step']} steps, "
        f"final val_acc {acc.mean():.3f} ± {acc.std():.3f}"
    )
    return 0


# TrainConfig attribute -> the `lesde train` flag that sets it (for its error messages)
_FLAG_OF = {"feature_module": "--feature-module", "le_model": "--le-model",
            "le_steps": "--le-steps", "model": "--model", "momentum": "--momentum",
            "weight_decay": "--weight-decay", "record_features": "--record-features",
            "batch_size": "--batch-size", "n_val": "--n-val", "backend": "--model"}  # fmt: skip


def _flags(message: str) -> str:
    """A TrainConfig message with each attribute followed by its flag."""
    for name, flag in _FLAG_OF.items():
        message = message.replace(f"`{name}`", f"`{name}` ({flag})")
    return message


def _train_config(args: argparse.Namespace, le: tuple[int, ...]):
    """The TrainConfig of a new `lesde train` run from its flags."""
    from lesde.train import TrainConfig

    return TrainConfig(
        n_trials=args.trials,
        n_steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        sampling=args.sampling,
        seed=args.seed,
        dtype=args.dtype,
        device=args.device,
        n_checkpoints=args.checkpoints,
        schedule=args.schedule,
        probe_per_class=args.probe_per_class,
        record_features=args.record_features,
        le_steps=le,
        le_model=args.le_model,
        p_err=args.p_err,
        n_val=args.n_val,
        chunk_steps=args.chunk_steps,
        backend="func" if args.model else "cnn",
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        feature_module=args.feature_module,
        model=args.model,
    )
