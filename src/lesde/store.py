"""Run store: one training run on disk, written incrementally, resumable, opened by xarray.

Why this file is long: the schema table below (~50 lines) and the record's writer, reader
and integrity checks (manifest) belong together; they change together.

A run directory holds

- ``config.json``: the trainer's configuration (and the data options of the CLI);
- ``meta.json``: ``status`` (``"running"``, ``"complete"`` or ``"diverged"``),
  ``steps_done``, package versions, seed, device, git revision, timings and, for a
  diverged run, ``diverged`` = {step, trial, message};
- ``record.zarr``: a zarr (v3) group of arrays with named dimensions (below);
- ``state/``: the trainer state at the last complete chunk (``params.pt``, read with
  ``torch.load(weights_only=True)``, and ``state.json`` with its step). It is what
  ``--resume`` continues from and is deleted when the run completes.

Every file is written atomically (temporary file + ``os.replace``; zarr's local store
does the same per chunk). The order of writes makes a kill at any moment safe: a chunk
of steps is written, then the state of its last step, then ``meta.json``; resuming
rewrites everything after the saved step with bitwise-identical values. ``status``
becomes ``"complete"`` only after the last array write, so a run never looks complete
when it is not. `open_run` refuses an incomplete run unless ``allow_incomplete=True``
(then it warns); it opens a diverged run with a warning (its data stop at the
divergence; later entries hold the fill values, NaN for floats and -1 for integers).

Variables (R trials, S steps, B samples per step, C checkpoints, P probes, K logits,
F penultimate features, M direct-LE steps). ``sample_*`` have a ``batch`` dimension
after ``step`` only when the batch size B > 1.

=====================  ===============================  =============================
name                   dims                             meaning
=====================  ===============================  =============================
sample_logits          (trial, step, logit)             logits of the trained sample,
                                                        before the update of that step
sample_loss            (trial, step)                    its cross-entropy loss
sample_label           (trial, step)                    its training label (after label
                                                        corruption), int16
sample_clean_label     (trial, step)                    its original label, int16
sample_index           (trial, step)                    its index in the training set,
                                                        int32
probe_logits           (trial, checkpoint, probe,       logits of the fixed probe set
                       logit)                           after ``checkpoint_step`` updates
probe_features         (trial, checkpoint, probe,       penultimate features (only if
                       feature)                         recorded)
val_loss, val_acc      (trial, checkpoint)              mean loss / accuracy on the
                                                        validation set
probe_label            (probe)                          class of each probe (training
                                                        label for train probes)
probe_clean_label      (probe)                          original label
probe_split            (probe)                          "train" or "val"
probe_index            (probe)                          index within its split
le_probe_before/after  (trial, le_step, probe, logit)   probe logits just before / after
                                                        the update of step ``le_step``
le_E                   (trial, le_step, class_k,        Ê_{k,L}(m) (docs/math.md §4, direct),
                                                        derived by `open_run` from the
                                                        le_probe_* and le_class arrays;
                       class_l)
                                                        only column L (the trained
                                                        class) is finite
le_alpha, le_beta      (trial, le_step)                 α̂(m) = Ê_LL, β̂(m) = mean_{k≠L} Ê_kL
le_class               (trial, le_step)                 L, the class trained at that step
=====================  ===============================  =============================

Coordinates: ``step`` (1..S), ``checkpoint_step`` (checkpoint; 0 is before any
training), ``le_step`` (le_step), ``trial``, ``probe``, ``class``. Attributes: the
configuration (flattened, JSON-able), ``status`` and ``class_names``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "open_run",
    "RunWriter",
    "read_json",
    "write_json_atomic",
    "save_npz_atomic",
    "load_npz",
    "jsonable",
    "run_status",
    "RECORD",
    "IncompleteRunError",
    "CorruptRunError",
    "verify_record",
    "reset_for_repair",
]

RECORD = "record.zarr"
CONFIG = "config.json"
META = "meta.json"
STATE_DIR = "state"
MANIFEST = "manifest.json"
LOCK_NAME = ".lesde.lock"  # the run-directory lock of `lesde.rundir`


class IncompleteRunError(RuntimeError):
    """Raised by `open_run` on a run that has not finished (see ``allow_incomplete``)."""


class CorruptRunError(RuntimeError):
    """A finished run's record lost or damaged a file (named in the message).

    ``lesde train --resume`` / `lesde.train.run_training` / ``lesde run`` repair it by
    training the run again (bitwise the same record).
    """

    def __init__(self, path: Path, bad: list[str]) -> None:
        self.path, self.bad = Path(path), list(bad)
        shown = ", ".join(self.bad[:4]) + (f" and {len(self.bad) - 4} more" if len(bad) > 4 else "")
        super().__init__(
            f"run {self.path} is damaged: {shown}; `lesde train --resume {self.path}` (or "
            "`lesde run` again) retrains it"
        )


def _file_crc(path: Path) -> int:
    import zlib

    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return crc


def _record_files(path: Path) -> list[Path]:
    root = path / RECORD
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def write_manifest(path: str | os.PathLike) -> None:
    """Write ``manifest.json``: size and CRC-32 of every file of the record.

    Written when a run finishes; `verify_record` checks a finished run against it, so a
    deleted, truncated or altered chunk is found and named instead of read as NaN.
    """
    path = Path(path)
    files = {
        str(p.relative_to(path)): [p.stat().st_size, _file_crc(p)] for p in _record_files(path)
    }
    write_json_atomic(path / MANIFEST, {"algorithm": "crc32", "files": files})


def verify_record(path: str | os.PathLike) -> None:
    """Check a finished run's record against its manifest (no manifest: nothing to check).

    Raises:
        CorruptRunError: naming every missing, truncated or changed file.
    """
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.exists():
        return
    try:
        files = read_json(mpath)["files"]
    except (ValueError, KeyError, TypeError) as err:
        raise CorruptRunError(path, [f"{MANIFEST} unreadable ({err})"]) from err
    bad = []
    for rel, (size, crc) in files.items():
        p = path / rel
        if not p.exists():
            bad.append(f"{rel} missing")
        elif p.stat().st_size != size:
            bad.append(f"{rel} truncated or changed ({p.stat().st_size} of {size} bytes)")
        elif _file_crc(p) != crc:
            bad.append(f"{rel} corrupt (checksum differs)")
    if bad:
        raise CorruptRunError(path, bad)


def reset_for_repair(path: str | os.PathLike) -> dict[str, Any]:
    """Remove a damaged run's record, state and meta, keeping ``config.json``.

    Returns:
        The old ``meta.json`` (its ``n_groups`` lets the retrained run split its trials
        the same way, for a bitwise-equal record).
    """
    import shutil

    path = Path(path)
    old = {}
    try:
        old = read_json(path / META)
    except (OSError, ValueError):
        pass
    for name in (RECORD, STATE_DIR, META, MANIFEST):
        p = path / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    return old


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _replace_atomic(path: Path, suffix: str, write: Any, mode: str) -> None:
    """Write ``path`` through a temporary file beside it, then ``os.replace``.

    A reader sees the old file or the whole new one, never a part; a crash leaves at most
    a hidden ``.NAME.*`` temporary file, removed here when the write itself fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON (numpy values, paths and dataclasses converted) atomically."""

    def write(f: Any) -> None:
        json.dump(jsonable(obj), f, indent=2, allow_nan=True)
        f.write("\n")

    _replace_atomic(path, ".tmp", write, "w")


def save_npz_atomic(path: Path, **arrays: Any) -> None:
    """``np.savez`` to ``path`` atomically (temporary file, then ``os.replace``)."""
    _replace_atomic(
        path, ".npz", lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}), "wb"
    )


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read a ``.npz`` written by `save_npz_atomic` (no pickles).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is damaged (truncated, not a zip, a bad member), named.
    """
    import zipfile

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise ValueError(f"{path}: damaged .npz file ({err}); delete it to recompute") from err


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON file written by `write_json_atomic`."""
    return json.loads(Path(path).read_text())


def run_status(path: str | os.PathLike) -> str:
    """``"running"``, ``"complete"``, ``"diverged"`` or ``"missing"`` for a run directory.

    Raises:
        ValueError: ``meta.json`` is not a JSON object (the file is named).
    """
    meta = Path(path) / META
    if not meta.exists():
        return "missing"
    try:
        obj = read_json(meta)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{meta}: not valid JSON ({err}); delete the run or it") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{meta}: expected a JSON object, found {type(obj).__name__}")
    return str(obj.get("status", "running"))


class RunWriter:
    """Creates or reopens a run directory and writes its arrays region by region.

    Args:
        path: the run directory.
        variables: {name: (dims, shape, numpy dtype, chunks)} of every array to create
            (ignored when reopening).
        coords: {name: (dims, values)} written once at creation.
        config: JSON-able configuration, saved as ``config.json``.
        meta: JSON-able facts for ``meta.json`` (versions, seed, device, ...).
        attrs: JSON-able attributes of the zarr group (xarray's ``Dataset.attrs``).
        resume: reopen an existing, unfinished run instead of creating a new one.

    Raises:
        FileExistsError: creating into a non-empty directory.
        FileNotFoundError / ValueError: resuming something that is not an unfinished run,
            or with a different configuration.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        variables: Mapping[str, tuple[tuple[str, ...], tuple[int, ...], Any, tuple[int, ...]]]
        | None = None,
        coords: Mapping[str, tuple[tuple[str, ...], np.ndarray]] | None = None,
        config: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        resume: bool = False,
    ) -> None:
        import zarr

        self.path = Path(path)
        if resume:
            status = run_status(self.path)
            if status == "missing":
                raise FileNotFoundError(f"`resume`: no run at {self.path} (no {META})")
            if status != "running":
                raise ValueError(f"`resume`: run {self.path} is already {status}")
            if config is not None and read_json(self.path / CONFIG) != jsonable(config):
                raise ValueError(
                    f"`resume`: the configuration differs from the one saved in "
                    f"{self.path / CONFIG}"
                )
            self.group = zarr.open_group(self.path / RECORD, mode="r+")
            self.meta = read_json(self.path / META)
            return
        if self.path.exists() and any(c.name != LOCK_NAME for c in self.path.iterdir()):
            raise FileExistsError(
                f"`out` {self.path} exists and is not empty; choose a new directory or resume"
            )
        if variables is None or config is None:
            raise ValueError("`variables` and `config` are required to create a run")
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / CONFIG, config)
        group = zarr.open_group(self.path / RECORD, mode="w", zarr_format=3)
        for name, (dims, values) in (coords or {}).items():
            values = np.asarray(values)
            if values.dtype.kind == "U":
                values = values.astype(object)
                arr = group.create_array(
                    name, shape=values.shape, dtype=str, dimension_names=dims, fill_value=""
                )
            else:
                arr = group.create_array(
                    name,
                    shape=values.shape,
                    dtype=values.dtype,
                    chunks=values.shape or None,
                    dimension_names=dims,
                    fill_value=0,
                )
            arr[...] = values
        for name, (dims, shape, dtype, chunks) in variables.items():
            dtype = np.dtype(dtype)
            fill = np.nan if dtype.kind == "f" else -1
            group.create_array(
                name,
                shape=shape,
                dtype=dtype,
                chunks=tuple(max(1, c) for c in chunks),
                dimension_names=dims,
                fill_value=fill,
            )
        group.attrs.update(jsonable(dict(attrs or {})))
        self.group = group
        self.meta = {"status": "running", "steps_done": 0, **jsonable(dict(meta or {}))}
        write_json_atomic(self.path / META, self.meta)

    # ------------------------------------------------------------------ arrays

    def write(self, name: str, region: tuple[slice | int, ...], values: np.ndarray) -> None:
        """Write ``values`` into ``name[region]`` (whole chunks, ideally)."""
        self.group[name][region] = values

    # ------------------------------------------------------------------ state

    @property
    def state_dir(self) -> Path:
        return self.path / STATE_DIR

    def save_state(
        self, tensors: Mapping[str, Any], step: int, extra: Mapping | None = None
    ) -> None:
        """Atomically save the trainer state after ``step`` updates, then ``meta.json``."""
        import torch

        self.state_dir.mkdir(exist_ok=True)
        target = self.state_dir / "params.pt"
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=".params.", suffix=".tmp")
        os.close(fd)
        # the step lives inside params.pt, so params and step are replaced together
        torch.save(
            {**{k: v.detach().cpu() for k, v in tensors.items()}, "__step__": torch.tensor(step)},
            tmp,
        )
        os.replace(tmp, target)
        write_json_atomic(self.state_dir / "state.json", {"step": int(step), **(extra or {})})
        self.update_meta(steps_done=int(step))

    def load_state(self) -> tuple[dict[str, Any], int]:
        """The last saved state ({name: tensor}, step); ({}, 0) when none was saved."""
        import torch

        target = self.state_dir / "params.pt"
        if not target.exists():
            return {}, 0
        tensors = torch.load(target, weights_only=True, map_location="cpu")
        step = int(tensors.pop("__step__"))
        return tensors, step

    def update_meta(self, **fields: Any) -> None:
        self.meta.update(jsonable(fields))
        write_json_atomic(self.path / META, self.meta)

    def mark_complete(self, **fields: Any) -> None:
        """Mark the run complete (last write of a run) and drop the resume state.

        The manifest of the record's files is written first, so a complete run always
        has one."""
        write_manifest(self.path)
        self.update_meta(status="complete", **fields)
        self._drop_state()

    def mark_diverged(self, *, step: int, trial: int, message: str, **fields: Any) -> None:
        """Mark the run diverged: final, data kept up to ``step``."""
        write_manifest(self.path)
        self.update_meta(
            status="diverged",
            diverged={"step": int(step), "trial": int(trial), "message": message},
            **fields,
        )
        self._drop_state()

    def _drop_state(self) -> None:
        for name in ("params.pt", "state.json"):
            p = self.state_dir / name
            if p.exists():
                p.unlink()
        if self.state_dir.exists() and not any(self.state_dir.iterdir()):
            self.state_dir.rmdir()


def open_run(path: str | os.PathLike, *, allow_incomplete: bool = False, verify: bool = True):
    """Open a training run as an ``xarray.Dataset`` (lazy; ``.load()`` to read it all).

    Args:
        path: run directory written by `lesde.train.train_ensemble` / ``lesde train``.
        allow_incomplete: open a run that is still running or was killed (warns); its
            unwritten entries hold NaN / -1.
        verify: check a finished run's files against its manifest first (sizes and
            CRC-32 of every chunk), so a lost or damaged chunk is an error, never NaN.

    Returns:
        Dataset with the variables and coordinates listed in this module's docstring;
        ``attrs["status"]`` is the run's status.

    Raises:
        FileNotFoundError: ``path`` is not a run directory.
        IncompleteRunError: the run has not completed and ``allow_incomplete`` is False.
        CorruptRunError: a file of a finished run's record is missing or damaged.
    """
    import xarray as xr

    path = Path(path)
    status = run_status(path)
    if status == "missing" or not (path / RECORD).exists():
        raise FileNotFoundError(f"`path` {path} is not a lesde run (no {META} / {RECORD})")
    meta = read_json(path / META)
    if status == "running":
        msg = (
            f"run {path} is incomplete ({meta.get('steps_done', 0)} steps done); "
            "resume it with `lesde train --resume`"
        )
        if not allow_incomplete:
            raise IncompleteRunError(msg + ", or pass allow_incomplete=True to read it anyway")
        warnings.warn(msg, stacklevel=2)
    if status in ("complete", "diverged") and verify:
        verify_record(path)
    if status == "diverged":
        info = meta.get("diverged", {})
        warnings.warn(
            f"run {path} diverged at step {info.get('step')} (trial {info.get('trial')}); "
            "its data stop there",
            stacklevel=2,
        )
    ds = xr.open_dataset(path / RECORD, engine="zarr", chunks=None, consolidated=False)
    coords = [c for c in ("checkpoint_step", "le_step", "step", "trial", "probe") if c in ds]
    ds = ds.set_coords(coords)
    if "probe_split" in ds:
        # zarr's variable-width strings come back as numpy StringDType; plain '<U' is
        # what every consumer (and np.unique, ==) handles
        split = ds["probe_split"]
        ds["probe_split"] = (split.dims, np.array(split.values.tolist(), dtype=str))
    ds.attrs["status"] = status
    ds.attrs["steps_done"] = int(meta.get("steps_done", 0))
    from lesde.estimate.direct import add_direct_le

    return add_direct_le(ds)


def jsonable(obj: Any) -> Any:
    """`obj` with numpy values, paths, tuples and dataclasses turned into JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    return obj
