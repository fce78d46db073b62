"""What the ensemble trainer records, and when (paper §4.1; docs/math.md §4).

- Every step, per trial: the index, label and clean label of the trained sample, its
  logits before the update and its loss (they come out of the training forward pass,
  so recording them costs nothing).
- At checkpoints (`checkpoint_steps`; step 0 is always one, so the estimators have
  X̄(0)): logits, and optionally penultimate features, of a fixed probe set drawn per
  class from the training and the validation split (`choose_probes`), plus validation
  loss and accuracy.
- At chosen steps (`log_steps` helps choose): probe logits just before and after that
  one update, and from them the direct local elasticity Ê_{k,L}(m), α̂(m), β̂(m)
  (`lesde.direct_local_elasticity`).

`record_layout` gives every variable's dimensions, shape, dtype and chunking; the store
(`lesde.store`) and the in-memory path of the trainer both follow it. The variables are
documented in `lesde.store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "checkpoint_steps",
    "log_steps",
    "choose_probes",
    "Probes",
    "record_layout",
    "MemorySink",
]


def checkpoint_steps(n_steps: int, n_checkpoints: int, schedule: str = "log") -> np.ndarray:
    """Steps (number of updates done) at which the probe set is evaluated.

    Args:
        n_steps: S, training steps.
        n_checkpoints: how many (at most; log-spacing merges duplicates at small steps).
        schedule: ``"log"`` (0 plus geometric from 1 to S, dense early where features
            move fast) or ``"linear"`` (even from 0 to S).

    Returns:
        (C,) sorted unique int64 steps, starting with 0 and ending with S.
    """
    if n_checkpoints < 2:
        raise ValueError(f"`n_checkpoints` must be >= 2, got {n_checkpoints}")
    if schedule == "log":
        s = np.geomspace(1, n_steps, n_checkpoints - 1) if n_checkpoints > 2 else []
        steps = np.concatenate([[0], np.round(s), [n_steps]])
    elif schedule == "linear":
        steps = np.round(np.linspace(0, n_steps, n_checkpoints))
    else:
        raise ValueError(f"`schedule` must be 'log' or 'linear', got {schedule!r}")
    return np.unique(steps.astype(np.int64))


def log_steps(n_steps: int, n: int) -> tuple[int, ...]:
    """``n`` roughly log-spaced steps in [1, S] (for the direct-LE measurement)."""
    if n < 1:
        return ()
    return tuple(int(v) for v in np.unique(np.round(np.geomspace(1, n_steps, n))))


@dataclass(frozen=True)
class Probes:
    """The fixed probe set.

    Attributes:
        x: (P, C, H, W) images.
        label: (P,) class: the training label used (after corruption) for train probes,
            the label for validation probes.
        clean_label: (P,) original label.
        split: (P,) "train" or "val".
        index: (P,) index within its split.
    """

    x: np.ndarray
    label: np.ndarray
    clean_label: np.ndarray
    split: np.ndarray
    index: np.ndarray


def choose_probes(
    y_train: np.ndarray,
    y_train_clean: np.ndarray,
    y_val: np.ndarray,
    x_train: np.ndarray,
    x_val: np.ndarray,
    per_class: int,
    *,
    n_classes: int,
    seed: np.random.SeedSequence,
) -> Probes:
    """Draw ``per_class`` probes of each class from train and from val, without replacement.

    A class with fewer samples contributes all of them. Train probes are grouped by
    their training label (what SGD sees), so their class means are the paper's X̄^k.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for split, y, clean in (("train", y_train, y_train_clean), ("val", y_val, y_val)):
        for k in range(n_classes):
            idx = np.flatnonzero(y == k)
            take = np.sort(rng.choice(idx, size=min(per_class, idx.size), replace=False))
            parts.append((split, take, np.full(take.size, k), clean[take]))
    index = np.concatenate([p[1] for p in parts]).astype(np.int64)
    split = np.concatenate([np.full(p[1].size, p[0]) for p in parts])
    x = np.concatenate([(x_train if p[0] == "train" else x_val)[p[1]] for p in parts], axis=0)
    return Probes(
        x=x,
        label=np.concatenate([p[2] for p in parts]).astype(np.int64),
        clean_label=np.concatenate([p[3] for p in parts]).astype(np.int64),
        split=split.astype(str),
        index=index,
    )


def record_layout(
    *,
    n_trials: int,
    n_steps: int,
    batch_size: int,
    n_classes: int,
    n_probes: int,
    n_checkpoints: int,
    n_le: int,
    n_features: int | None,
    chunk_steps: int,
    float_dtype: Any,
) -> dict[str, tuple[tuple[str, ...], tuple[int, ...], Any, tuple[int, ...]]]:
    """{name: (dims, shape, dtype, chunks)} of every recorded variable.

    Step arrays are chunked by ``chunk_steps`` (the trainer writes one such chunk at a
    time, so every write is a whole chunk); checkpoint and LE arrays by one checkpoint.
    """
    R, S, K, P, C, M = n_trials, n_steps, n_classes, n_probes, n_checkpoints, n_le
    cs = min(chunk_steps, S)
    f = np.dtype(float_dtype)
    if batch_size == 1:
        sdims, sshape, schunk = ("trial", "step"), (R, S), (R, cs)
    else:
        sdims, sshape, schunk = ("trial", "step", "batch"), (R, S, batch_size), (R, cs, batch_size)
    out = {
        "sample_logits": ((*sdims, "logit"), (*sshape, K), f, (*schunk, K)),
        "sample_loss": (sdims, sshape, f, schunk),
        "sample_label": (sdims, sshape, np.int16, schunk),
        "sample_clean_label": (sdims, sshape, np.int16, schunk),
        "sample_index": (sdims, sshape, np.int32, schunk),
        "probe_logits": (("trial", "checkpoint", "probe", "logit"), (R, C, P, K), f, (R, 1, P, K)),
        "val_loss": (("trial", "checkpoint"), (R, C), np.float64, (R, 1)),
        "val_acc": (("trial", "checkpoint"), (R, C), np.float64, (R, 1)),
    }
    if n_features:
        out["probe_features"] = (
            ("trial", "checkpoint", "probe", "feature"),
            (R, C, P, n_features),
            f,
            (R, 1, P, n_features),
        )
    if M:
        out.update(
            {
                "le_probe_before": (
                    ("trial", "le_step", "probe", "logit"),
                    (R, M, P, K),
                    f,
                    (R, 1, P, K),
                ),
                "le_probe_after": (
                    ("trial", "le_step", "probe", "logit"),
                    (R, M, P, K),
                    f,
                    (R, 1, P, K),
                ),
                "le_class": (("trial", "le_step"), (R, M), np.int16, (R, 1)),
            }
        )
    return out


class MemorySink:
    """Holds a run's arrays in memory (the trainer's in-memory path; same API as the store).

    Args:
        variables: `record_layout` output.
    """

    def __init__(self, variables: dict) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.dims: dict[str, tuple[str, ...]] = {}
        for name, (dims, shape, dtype, _) in variables.items():
            dtype = np.dtype(dtype)
            fill = np.nan if dtype.kind == "f" else -1
            self.arrays[name] = np.full(shape, fill, dtype=dtype)
            self.dims[name] = dims

    def write(self, name: str, region: tuple, values: np.ndarray) -> None:
        self.arrays[name][region] = values
