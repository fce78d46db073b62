"""`lesde analyse`: the estimate → simulate → analyse → figures → report chain on any record.

The record can be a training record of `lesde train` (or of the trainer from Python),
a run directory's ``train/``, or an ``.npz`` of logits from anywhere (`LOGITS_KEYS`):

========================  ==================  ===========================================
key                       shape, dtype        meaning
========================  ==================  ===========================================
``sample_logits``         (R, S, K) float     logits of the sample trained at each of S
                                              steps of R trials, before the update
``sample_label``          (R, S) int          its class in [0, K)
``probe_logits``          (R, C, P, K) float  logits of P fixed probe samples at C
                                              checkpoints
``probe_label``           (P,) int            the probes' classes (≥ 2 per class)
``checkpoint_step``       (C,) int            the step of each checkpoint (0 = start),
                                              strictly increasing, at most the last step
``step``                  (S,) int            optional, strictly increasing; default 1 … S
``val_loss``, ``val_acc`` (R, C) float        optional validation metrics (default NaN)
``class_names``           (K,) str            optional
========================  ==================  ===========================================

The run directory ``out`` links the record as ``out/train`` (nothing is copied) or, for
an ``.npz``, holds it converted there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from lesde.experiments.config import PipelineConfig
from lesde.studies.runner import run_single

__all__ = ["analyse", "LOGITS_KEYS", "import_logits"]

LOGITS_KEYS = ("sample_logits", "sample_label", "probe_logits", "probe_label", "checkpoint_step")
OPTIONAL_LOGITS_KEYS = ("step", "val_loss", "val_acc", "class_names")


def import_logits(path: str | os.PathLike, train_dir: Path) -> None:
    """Convert an ``.npz`` of logits (module docstring) into a record in ``train_dir``.

    Everything is checked before anything is written: a bad file leaves no record.

    Args:
        path: the ``.npz``.
        train_dir: the record's directory to create.

    Raises:
        ValueError: a key is missing, the shapes disagree or a value is out of range (one
            line naming the key, what it must be and what it is).
    """
    import xarray as xr

    from lesde.store import load_npz, write_json_atomic

    path = Path(path)
    d = load_npz(path)
    missing = [k for k in LOGITS_KEYS if k not in d]
    if missing:
        raise ValueError(f"--logits {path}: missing {', '.join(missing)}; it needs "
                         f"{', '.join(LOGITS_KEYS)} (see `lesde analyse --help`)")  # fmt: skip
    unknown = sorted(set(d) - set(LOGITS_KEYS) - set(OPTIONAL_LOGITS_KEYS))
    if unknown:  # a misspelt optional key would otherwise be dropped without a word
        raise ValueError(f"--logits {path}: unknown key(s) {', '.join(unknown)}; the optional "
                         f"keys are {', '.join(OPTIONAL_LOGITS_KEYS)}")  # fmt: skip
    z, y = np.asarray(d["sample_logits"], float), np.asarray(d["sample_label"])
    pz, py = np.asarray(d["probe_logits"], float), np.asarray(d["probe_label"])
    ck = np.asarray(d["checkpoint_step"])
    if z.ndim != 3 or y.shape != z.shape[:2]:
        raise ValueError(f"--logits {path}: `sample_logits` (R, S, K) and `sample_label` (R, S) "
                         f"must agree, got {z.shape} and {y.shape}")  # fmt: skip
    R, S, K = z.shape
    if pz.shape[:1] != (R,) or pz.ndim != 4 or pz.shape[3] != K or pz.shape[2] != py.size:
        raise ValueError(f"--logits {path}: `probe_logits` must be ({R}, C, P, {K}) with "
                         f"P = len(probe_label) = {py.size}, got {pz.shape}")  # fmt: skip
    if ck.shape != (pz.shape[1],):
        raise ValueError(f"--logits {path}: `checkpoint_step` must be ({pz.shape[1]},), "
                         f"got {ck.shape}")  # fmt: skip
    if min(R, S, K, py.size, ck.size) < 1 or K < 2:
        raise ValueError(f"--logits {path}: needs R, S, C, P >= 1 and K >= 2, got R={R}, "
                         f"S={S}, K={K} (`sample_logits`), C={ck.size}, P={py.size} "
                         "(`probe_logits`)")  # fmt: skip
    for name, lab in (("sample_label", y), ("probe_label", py)):
        if lab.dtype.kind not in "iu" or lab.min() < 0 or lab.max() >= K:
            raise ValueError(f"--logits {path}: `{name}` must be integers in [0, {K})")
    for name, v in (("sample_logits", z), ("probe_logits", pz)):
        bad = int(np.size(v) - np.isfinite(v).sum())
        if bad:
            raise ValueError(f"--logits {path}: `{name}` must be finite, got {bad} NaN or "
                             "infinite values")  # fmt: skip
    step, ck, py = _check_logits_extras(path, d, R, S, K, ck, py)
    nan = np.full((R, ck.size), np.nan)
    vals = {}
    for name in ("val_loss", "val_acc"):
        vals[name] = np.asarray(d.get(name, nan), float)
        if vals[name].shape != (R, ck.size):
            raise ValueError(f"--logits {path}: `{name}` must be (R, C) = ({R}, {ck.size}), "
                             f"got {vals[name].shape}")  # fmt: skip
    names = [str(c) for c in d.get("class_names", [f"class {k}" for k in range(K)])]
    if len(names) != K:
        raise ValueError(f"--logits {path}: `class_names` must hold K = {K} names, got "
                         f"{len(names)}")  # fmt: skip
    ds = xr.Dataset(
        {
            "sample_logits": (("trial", "step", "logit"), z.astype(np.float32)),
            "sample_label": (("trial", "step"), y.astype(np.int64)),
            "probe_logits": (("trial", "checkpoint", "probe", "logit"), pz.astype(np.float32)),
            "probe_label": (("probe",), py.astype(np.int64)),
            "val_loss": (("trial", "checkpoint"), vals["val_loss"]),
            "val_acc": (("trial", "checkpoint"), vals["val_acc"]),
        },
        coords={"step": step, "checkpoint_step": ("checkpoint", ck)},
        attrs={"n_classes": K, "class_names": names, "source": str(path.resolve())},
    )
    train_dir.mkdir(parents=True, exist_ok=True)
    ds.to_zarr(train_dir / "record.zarr", mode="w", consolidated=False)
    write_json_atomic(train_dir / "imported.json", {"source": str(path.resolve())})


def _check_logits_extras(path, d, R, S, K, ck, py):
    """The steps, checkpoint steps and probe classes of an ``.npz`` of logits, checked.

    Returns:
        (step (S,) int64, checkpoint_step (C,) int64, probe_label (P,) int64).
    """
    pre = f"--logits {path}:"
    step = np.asarray(d.get("step", np.arange(1, S + 1)))
    for name, v, n in (("step", step, S), ("checkpoint_step", ck, ck.size)):
        if v.shape != (n,):
            raise ValueError(f"{pre} `{name}` must be ({n},), got shape {v.shape}")
        if v.dtype.kind not in "iu" and not (
            v.dtype.kind == "f" and np.all(np.isfinite(v)) and np.all(v == np.round(v))
        ):
            raise ValueError(f"{pre} `{name}` must be integers, got dtype {v.dtype} "
                             f"({v[:4].tolist()}...)")  # fmt: skip
        v = v.astype(np.int64)
        drop = np.flatnonzero(np.diff(v) <= 0)
        if drop.size:
            i = int(drop[0])
            raise ValueError(f"{pre} `{name}` must be strictly increasing, got {v[i]} then "
                             f"{v[i + 1]} at positions {i}, {i + 1}")  # fmt: skip
        if v.size and v[0] < 0:
            raise ValueError(f"{pre} `{name}` must be >= 0, got {v[0]}")
    step, ck = step.astype(np.int64), ck.astype(np.int64)
    last = int(step[-1]) if step.size else 0
    if ck[-1] > last:
        what = "the last of `step`" if "step" in d else f"S = {S} steps"
        raise ValueError(f"{pre} `checkpoint_step` must be at most {what} ({last}), got "
                         f"{ck[-1]}")  # fmt: skip
    py = py.astype(np.int64)
    counts = np.bincount(py, minlength=K)
    few = np.flatnonzero(counts < 2)
    if few.size:
        raise ValueError(f"{pre} `probe_label` needs >= 2 probes of every class 0..{K - 1}, got "
                         + ", ".join(f"{counts[k]} of class {k}" for k in few[:5])
                         + (", ..." if few.size > 5 else ""))  # fmt: skip
    return step, ck, py


def _default_bin_width(record: Path) -> int:
    """Bins of ~1/1000 of the run, wide enough for ~4 trained samples of every class."""
    import xarray as xr

    # sizes only: opened lazily, without the checksum pass the pipeline's open makes
    ds = xr.open_dataset(record / "record.zarr", engine="zarr", chunks=None, consolidated=False)
    S, R, K = int(ds.sizes["step"]), int(ds.sizes["trial"]), int(ds.sizes["logit"])
    return max(1, round(S / 1000), -(-4 * K // R))


def analyse(
    path: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    logits: str | os.PathLike | None = None,
    cfg: PipelineConfig | None = None,
    log=print,
) -> dict[str, Any]:
    """Estimate, simulate, analyse, draw and report a recorded run.

    Args:
        path: a training record (a directory with ``meta.json`` and ``record.zarr``, or a
            run directory of ``lesde run``, whose ``train/`` is used), or None with
            ``logits``.
        out: the run directory to write (summary, stage files, figures, report).
        logits: an ``.npz`` of logits instead of ``path`` (module docstring).
        cfg: options of the stages; default: bins of ~1/1000 of the run.
        log: progress messages.

    Returns:
        The summary.

    Raises:
        ValueError: both or neither of ``path`` and ``logits``; an unfinished record (the
            message says how to finish it); a bad ``.npz`` (`import_logits`).
    """
    from lesde.store import run_status

    out = Path(out)
    train_dir = out / "train"
    if logits is not None and path is not None:
        raise ValueError(f"`path` ({path}) and `logits` ({logits}) are alternatives: give "
                         "one of them")  # fmt: skip
    if logits is not None:
        source = str(Path(logits).resolve())
        if not (train_dir / "record.zarr").exists():
            import_logits(logits, train_dir)
    else:
        if path is None:
            raise ValueError("`path` (a training record) or `logits` (an .npz) is required")
        record = Path(path).resolve()
        if not (record / "meta.json").exists() and (record / "train" / "meta.json").exists():
            record = record / "train"  # a run directory of `lesde run`: its training record
        status = run_status(record)
        if status == "missing":
            raise FileNotFoundError(f"{record}: not a lesde training record (no meta.json)")
        if status == "running":
            raise ValueError(_unfinished_advice(record))
        source = str(record)
        out.mkdir(parents=True, exist_ok=True)
        if not train_dir.exists():
            train_dir.symlink_to(record, target_is_directory=True)
    if cfg is None:
        cfg = PipelineConfig(bin_width=_default_bin_width(train_dir))

    def train(_: Path) -> None:  # the record exists already
        return None

    return run_single(out, experiment="analyse", config={"source": source}, spec=None,
                      cfg=cfg, train=train, log=log)  # fmt: skip


def _unfinished_advice(record: Path) -> str:
    """One line: a record is not complete, what is missing and how to finish it."""
    from lesde.store import read_json

    config = read_json(record / "config.json") if (record / "config.json").exists() else {}
    if "recorder" in config:  # a `lesde.Recorder` record: only the user's loop can finish it
        from lesde.train.own_loop import incomplete_trials

        why = "; ".join(incomplete_trials(read_json(record / "meta.json"), config))
        return (
            f"{record}: the recording is not complete ({why}); rerun your training loop "
            "with the same Recorder arguments; it continues from the last written chunk"
        )
    return f"{record}: the run is not complete; resume it with `lesde train --resume {record}`"
