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
``checkpoint_step``       (C,) int            the step of each checkpoint (0 = start)
``step``                  (S,) int            optional; default 1 … S
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


def import_logits(path: str | os.PathLike, train_dir: Path) -> None:
    """Convert an ``.npz`` of logits (module docstring) into a record in ``train_dir``.

    Raises:
        ValueError: a key is missing or the shapes disagree (the key is named).
    """
    import xarray as xr

    from lesde.store import load_npz, write_json_atomic

    path = Path(path)
    d = load_npz(path)
    missing = [k for k in LOGITS_KEYS if k not in d]
    if missing:
        raise ValueError(f"--logits {path}: missing {', '.join(missing)}; it needs "
                         f"{', '.join(LOGITS_KEYS)} (see `lesde analyse --help`)")  # fmt: skip
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
    for name, lab in (("sample_label", y), ("probe_label", py)):
        if lab.dtype.kind not in "iu" or lab.min() < 0 or lab.max() >= K:
            raise ValueError(f"--logits {path}: `{name}` must be integers in [0, {K})")
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(pz))):
        raise ValueError(f"--logits {path}: the logits hold NaN or infinite values")
    step = np.asarray(d.get("step", np.arange(1, S + 1)))
    nan = np.full((R, ck.size), np.nan)
    names = [str(c) for c in d.get("class_names", [f"class {k}" for k in range(K)])]
    ds = xr.Dataset(
        {
            "sample_logits": (("trial", "step", "logit"), z.astype(np.float32)),
            "sample_label": (("trial", "step"), y.astype(np.int64)),
            "probe_logits": (("trial", "checkpoint", "probe", "logit"), pz.astype(np.float32)),
            "probe_label": (("probe",), py.astype(np.int64)),
            "val_loss": (("trial", "checkpoint"), np.asarray(d.get("val_loss", nan), float)),
            "val_acc": (("trial", "checkpoint"), np.asarray(d.get("val_acc", nan), float)),
        },
        coords={"step": step, "checkpoint_step": ("checkpoint", ck)},
        attrs={"n_classes": K, "class_names": names, "source": str(path.resolve())},
    )
    train_dir.mkdir(parents=True, exist_ok=True)
    ds.to_zarr(train_dir / "record.zarr", mode="w", consolidated=False)
    write_json_atomic(train_dir / "imported.json", {"source": str(path.resolve())})


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
        logits: an ``.npz`` of logits instead (module docstring).
        cfg: options of the stages; default: bins of ~1/1000 of the run.
        log: progress messages.

    Returns:
        The summary.
    """
    from lesde.store import run_status

    out = Path(out)
    train_dir = out / "train"
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
            raise ValueError(f"{record}: the run is not complete; resume it with "
                             f"`lesde train --resume {record}`")  # fmt: skip
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
