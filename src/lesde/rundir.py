"""Run directories: summary, stage marks and files, identity, one writer at a time.

A run directory (``lesde run``) holds ``summary.json`` (the stages done, with their
versions, and every number), the stage files (``estimates.npz``, ``simulate.npz``,
``analysis.npz``), ``train/`` (the training record, `lesde.store`), figures and the
report. Every layer above the pipeline reads a run through this module.

Every command that writes a run directory (``lesde run``, ``train``, ``sweep``) goes
through three checks before any work starts:

- `check_out_dir`: the path names a directory (or nothing yet) that this user may write;
- `RunDirLock`: one writer per directory, an OS file lock (``fcntl.flock`` on
  ``DIR/.lesde.lock``) released by the kernel when the process exits or crashes; a
  second writer gets `LockHeldError` naming the holder's PID;
- `check_identity`: what the directory holds (experiment, configuration, data, seed)
  equals what is asked for; otherwise `RunMismatchError` says what differs and how to
  proceed (another ``--out``, or ``--overwrite``, which `wipe` implements).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from lesde.store import load_npz, save_npz_atomic, write_json_atomic

__all__ = [
    "SUMMARY",
    "load_summary",
    "stage_done",
    "mark_stage",
    "open_record",
    "load_npz",
    "save_npz_atomic",
    "write_json_atomic",
    "RunMismatchError",
    "LockHeldError",
    "RunDirLock",
    "check_out_dir",
    "check_identity",
    "config_diff",
    "wipe",
    "LOCK_NAME",
]

LOCK_NAME = ".lesde.lock"
SUMMARY = "summary.json"
# what a lesde run directory may hold; `wipe` deletes nothing else
_OURS = {
    "summary.json", "report.html", "figures", "estimates.npz", "simulate.npz",
    "analysis.npz", "train", "points", "separation.json", "separation.png", "collapse.json",
    "collapse.png", "config.json", "meta.json", "record.zarr", "state", "synthetic.json",
    "sweep.json", "imported.json", "manifest.json", LOCK_NAME,
    # the sub-runs of `lesde run paper`
    "geomnist", "label-noise", "sample-size", "separation", "digits", "cifar-k2", "cifar-k3",
}  # fmt: skip


class RunMismatchError(ValueError):
    """The run directory holds a different run than the one asked for."""


class LockHeldError(RuntimeError):
    """Another process is writing the run directory."""


def check_out_dir(path: str | os.PathLike, *, flag: str = "--out") -> Path:
    """``path`` as a directory this process can write (created if missing).

    Raises:
        NotADirectoryError: ``path`` (or a parent) is a file.
        PermissionError: the directory (or its parent) is not writable.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise NotADirectoryError(f"{flag} {p}: expected a directory, found a file")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:  # a parent is a file
        raise NotADirectoryError(f"{flag} {p}: a parent of it is a file") from err
    except PermissionError as err:
        raise PermissionError(f"{flag} {p}: permission denied (cannot create it)") from err
    if not os.access(p, os.W_OK | os.X_OK):
        raise PermissionError(f"{flag} {p}: permission denied (directory not writable)")
    return p


class RunDirLock:
    """Exclusive lock of a run directory for the lifetime of a ``with`` block.

    The lock file holds the PID of its holder. Re-entrant within one process (a sweep
    that locks its parent and then each point's directory takes distinct locks; the same
    directory locked twice by one process is allowed).

    Raises:
        LockHeldError: another process holds the lock.
    """

    _held: dict[str, int] = {}  # resolved path -> depth, for re-entry in one process

    def __init__(self, path: str | os.PathLike, *, flag: str = "--out") -> None:
        self.path = Path(path)
        self.flag = flag
        self._fd: int | None = None
        self._key = str(self.path.resolve())

    def __enter__(self) -> RunDirLock:
        import fcntl

        if self._key in RunDirLock._held:
            RunDirLock._held[self._key] += 1
            return self
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / LOCK_NAME
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockHeldError(
                f"{self.flag} {self.path} is in use by another lesde process (PID {holder}); "
                "wait for it to finish or choose another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        RunDirLock._held[self._key] = 1
        return self

    def __exit__(self, *exc: Any) -> None:
        depth = RunDirLock._held.get(self._key, 0)
        if depth > 1:
            RunDirLock._held[self._key] = depth - 1
            return
        RunDirLock._held.pop(self._key, None)
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def config_diff(stored: Any, requested: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two JSON-like values: ["seed: 0 → 5", ...]."""
    if isinstance(stored, dict) and isinstance(requested, dict):
        out: list[str] = []
        for k in sorted(set(stored) | set(requested)):
            name = f"{prefix}.{k}" if prefix else str(k)
            if k not in stored:
                if requested[k] is not None:  # a new option at its "unset" default is no change
                    out.append(f"{name}: (absent) → {_short(requested[k])}")
            elif k not in requested:
                out.append(f"{name}: {_short(stored[k])} → (absent)")
            else:
                out += config_diff(stored[k], requested[k], name)
        return out
    if _norm(stored) != _norm(requested):
        return [f"{prefix or 'value'}: {_short(stored)} → {_short(requested)}"]
    return []


def _norm(v: Any) -> Any:
    """JSON round trip (tuples become lists, numpy scalars plain)."""
    from lesde.store import jsonable

    return json.loads(json.dumps(jsonable(v), allow_nan=True))


def _short(v: Any) -> str:
    s = json.dumps(_norm(v), allow_nan=True)
    return s if len(s) <= 60 else s[:57] + "..."


def check_identity(
    run_dir: str | os.PathLike,
    *,
    experiment: str,
    config: Any,
    what: str = "run",
) -> None:
    """Refuse to continue a run directory that holds another run.

    Compares the ``experiment`` and ``config`` stored in ``run_dir/summary.json`` with
    the requested ones. A directory without a summary (new, or a bare training record,
    which `lesde.train.run_training` checks itself) passes.

    Raises:
        RunMismatchError: naming each difference and how to proceed.
        ValueError: ``summary.json`` is not valid JSON or not an object (named).
    """
    p = Path(run_dir) / "summary.json"
    if not p.exists():
        return
    try:
        stored = read_summary(p)
    except ValueError as err:
        # a damaged summary is recomputed by the pipeline; the training record under it
        # still checks its own configuration
        warnings.warn(f"{err}; it is rewritten", stacklevel=2)
        return
    diffs = []
    if stored.get("experiment", experiment) != experiment:
        diffs.append(f"experiment: {stored.get('experiment')!r} → {experiment!r}")
    if "config" in stored:
        diffs += config_diff(stored["config"], config)
    if diffs:
        raise mismatch(Path(run_dir), diffs, what=what)


def mismatch(run_dir: Path, diffs: list[str], *, what: str = "run") -> RunMismatchError:
    shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
    return RunMismatchError(
        f"{run_dir} holds a different {what} (stored → requested: {shown}); choose another "
        "--out, or pass --overwrite to start it afresh"
    )


def read_summary(path: Path) -> dict[str, Any]:
    """``summary.json`` as a dict; a broken file is named in the error."""
    try:
        obj = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(obj).__name__}")
    return obj


def wipe(run_dir: str | os.PathLike, *, flag: str = "--out") -> None:
    """Empty a lesde run directory for ``--overwrite`` (the lock file stays).

    Raises:
        ValueError: the directory holds files that a lesde run does not write (nothing
            is deleted then).
    """
    p = Path(run_dir)
    if not p.exists():
        return
    foreign = sorted(c.name for c in p.iterdir() if c.name not in _OURS and not
                     c.name.startswith("."))  # fmt: skip
    if foreign:
        raise ValueError(
            f"--overwrite: {flag} {p} holds files a lesde run does not write "
            f"({', '.join(foreign[:5])}); not deleting anything"
        )
    for c in p.iterdir():
        if c.name == LOCK_NAME:
            continue
        if c.is_dir() and not c.is_symlink():
            shutil.rmtree(c)
        else:
            c.unlink()


# ---------------------------------------------------------------- summary and stages


def load_summary(run_dir: Path, *, broken: str = "raise") -> dict[str, Any]:
    """The run's ``summary.json`` ({} when absent).

    Args:
        broken: what a file that is not a JSON object gives: "raise" a ValueError naming
            it (readers: figures, report), or "warn" and {} (the pipeline, which then
            recomputes the stages; the training record checks itself).
    """
    p = Path(run_dir) / SUMMARY
    if not p.exists():
        return {}
    try:
        return read_summary(p)
    except ValueError as err:
        if broken == "raise":
            raise
        warnings.warn(f"{err}; the run's stages are recomputed", stacklevel=2)
        return {}


def _readable(path: Path) -> bool:
    """A stage file that exists and reads back whole (a truncated .npz fails here)."""
    if not path.exists():
        return False
    if path.suffix != ".npz":
        return True
    try:
        load_npz(path)
    except Exception:  # noqa: BLE001 - any failure to read means: recompute the stage
        warnings.warn(f"{path}: damaged, cannot be read; its stage is recomputed", stacklevel=3)
        return False
    return True


def stage_done(run_dir: Path, summary: dict, stage: str, outputs: list[str], version: int) -> bool:
    """Whether ``summary`` marks ``stage`` done at ``version`` with every output readable."""
    info = summary.get("stages", {}).get(stage)
    return bool(
        info
        and info.get("done")
        and info.get("version", 1) == version
        and all(_readable(Path(run_dir) / o) for o in outputs)
    )


def mark_stage(summary: dict, stage: str, outputs: list[str], seconds: float, version: int) -> None:
    """Mark ``stage`` done in ``summary`` (the caller writes it:
    `lesde.experiments.summary.write_summary`)."""
    summary.setdefault("stages", {})[stage] = {
        "done": True,
        "version": version,
        "outputs": outputs,
        "seconds": round(seconds, 3),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def open_record(train_dir: Path):
    """Open a run store as an ``xarray.Dataset`` (via `lesde.open_run`).

    A directory written by `synthetic_record` (marked by ``synthetic.json``) is opened
    with xarray directly.
    """
    import xarray as xr

    train_dir = Path(train_dir)
    if (train_dir / "synthetic.json").exists() or (train_dir / "imported.json").exists():
        return xr.open_zarr(train_dir / "record.zarr", consolidated=False).load()
    from lesde.store import open_run

    return open_run(train_dir)
