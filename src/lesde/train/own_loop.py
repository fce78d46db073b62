"""`lesde.Recorder`: record the logit dynamics of your own PyTorch training loop.

The store it writes has the layout of `lesde.train_ensemble`'s (docs/rundir.md), so
`lesde.open_run` reads it and `lesde analyse` turns it into a report. Every step, each
trial's trained-sample logits before the update (and label, loss, index); at the
checkpoints, the probe set's logits (and features) and the validation loss and accuracy.

Writes are incremental: a trial's steps are buffered and written a chunk at a time (when
the next step or checkpoint of that trial comes, i.e. after the chunk's last update), and
with each chunk the models and optimizers registered with `Recorder.track` are saved.
After an interruption, `Recorder.start(trial)` restores them and returns the step to
continue from; the store is marked complete only when every trial's steps and
checkpoints are written (on leaving the ``with`` block); leaving it with trials
incomplete warns which, and why.

The optimizer given to `Recorder.track` is recorded too (its class and settings, in
``meta.json`` under ``"optimizers"``): the LE-SDE models plain batch-size-1 SGD, and
`optimizer_caveat` says when a record was trained otherwise.

Example::

    with lesde.Recorder("runs/mine", n_trials=3, n_steps=2000, probes=(xp, yp),
                        val=(xv, yv), n_checkpoints=11) as rec:
        for r in range(3):
            torch.manual_seed(r)
            net = make_net(); opt = torch.optim.SGD(net.parameters(), lr=0.01)
            rec.track(r, net, opt)
            for m in range(rec.start(r), 2000):
                if rec.is_checkpoint(m):
                    rec.checkpoint(r, m, net)
                i = sample_index(r, m)               # your sampling, a function of (r, m)
                z = net(x[i]); loss = F.cross_entropy(z, y[i])
                rec.step(r, z, y[i], loss=loss, index=i)
                opt.zero_grad(); loss.backward(); opt.step()
            rec.checkpoint(r, 2000, net)
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from lesde.train.premise import describe_optimizer, optimizer_caveat  # noqa: F401 (its home)

__all__ = ["Recorder", "optimizer_caveat", "incomplete_trials"]


class Recorder:
    """Context manager that records a training loop into a run store (batch size 1).

    Args:
        out: the run directory (created, or reopened to resume the same configuration).
        n_trials: R, networks trained (one after the other or interleaved).
        n_steps: S, SGD steps per trial.
        probes: (x (P, ...), labels (P,)) the fixed probe set evaluated at checkpoints.
        val: optional (x_val, y_val) for the validation loss and accuracy.
        n_checkpoints: evenly spaced checkpoints including 0 and S (default 11); or
            ``checkpoints`` (not both).
        checkpoints: explicit checkpoint steps (in [0, S], with 0 and S).
        class_names: K names; default from the labels.
        n_features: record features of this width at checkpoints (every
            ``checkpoint(..., features=...)`` must then give them); None: none.
        chunk_steps: steps per written chunk (and the resume granularity).
        config: anything JSON-able to store with the run (your hyper-parameters).

    Raises:
        ValueError: an argument is out of range or contradicts another (it is named).
    """

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        n_trials: int,
        n_steps: int,
        probes: tuple[Any, Any],
        val: tuple[Any, Any] | None = None,
        n_checkpoints: int | None = None,
        checkpoints: Any = None,
        class_names: Any = None,
        n_features: int | None = None,
        chunk_steps: int = 500,
        config: dict | None = None,
    ) -> None:
        from lesde._validation import check_int
        from lesde.train.recorder import record_layout

        for name, v in (("n_trials", n_trials), ("n_steps", n_steps),
                        ("chunk_steps", chunk_steps)):  # fmt: skip
            check_int(name, v)
        self.out, self.R, self.S, self.cs = Path(out), n_trials, n_steps, min(chunk_steps, n_steps)
        xp, yp = (np.asarray(a) for a in probes)
        if yp.ndim != 1 or xp.shape[:1] != yp.shape or yp.dtype.kind not in "iu":
            raise ValueError(f"`probes` must be (x (P, ...), integer labels (P,)), got shapes "
                             f"{xp.shape} and {yp.shape}")  # fmt: skip
        self.x_probe, self.y_probe = xp, yp.astype(np.int64)
        self.val = None if val is None else tuple(np.asarray(a) for a in val)
        if self.val is not None and (
            len(self.val) != 2
            or self.val[1].ndim != 1
            or self.val[0].shape[:1] != self.val[1].shape
        ):
            raise ValueError("`val` must be (x_val (N, ...), labels (N,)), got shapes "
                             f"{[np.shape(a) for a in self.val]}")  # fmt: skip
        K = int(yp.max()) + 1 if class_names is None else len(class_names)
        if K < 2 or yp.min() < 0 or yp.max() >= K:
            raise ValueError(f"`probes` labels must be in [0, K) with K >= 2, got K={K}")
        self.K = K
        names = list(class_names) if class_names is not None else [f"class {k}" for k in range(K)]
        if checkpoints is not None and n_checkpoints is not None:
            raise ValueError(f"`n_checkpoints` ({n_checkpoints}) and `checkpoints` are "
                             "alternatives: give one of them")  # fmt: skip
        if n_features is not None:
            check_int("n_features", n_features)
        if checkpoints is None:
            n_checkpoints = 11 if n_checkpoints is None else n_checkpoints
            check_int("n_checkpoints", n_checkpoints, low=2)
            if n_checkpoints > n_steps + 1:
                raise ValueError(f"`n_checkpoints` must be <= n_steps + 1 = {n_steps + 1} "
                                 f"(distinct steps), got {n_checkpoints}")  # fmt: skip
            checkpoints = np.unique(np.linspace(0, n_steps, n_checkpoints).round().astype(int))
        ck = np.asarray(sorted({int(c) for c in checkpoints}), dtype=np.int64)
        if ck[0] != 0 or ck[-1] != n_steps:
            raise ValueError(f"`checkpoints` must include 0 and n_steps={n_steps}, got {ck}")
        self.ck = ck
        self._ck_index = {int(s): i for i, s in enumerate(ck)}
        layout = record_layout(
            n_trials=n_trials, n_steps=n_steps, batch_size=1, n_classes=K,
            n_probes=yp.size, n_checkpoints=ck.size, n_le=0, n_features=n_features,
            chunk_steps=self.cs, float_dtype=np.float32,
        )  # fmt: skip
        # one trial per chunk: trials are written independently (one at a time or not)
        layout = {n: (d, s, t, (1, *c[1:])) for n, (d, s, t, c) in layout.items()}
        self.n_features = n_features
        self.config = {
            "recorder": {"n_trials": n_trials, "n_steps": n_steps, "checkpoints": ck.tolist(),
                         "chunk_steps": self.cs, "n_classes": K, "n_features": n_features},
            "data": {"name": "recorder", "options": dict(config or {})},
        }  # fmt: skip
        coords = {
            "step": (("step",), np.arange(1, n_steps + 1, dtype=np.int64)),
            "trial": (("trial",), np.arange(n_trials, dtype=np.int64)),
            "checkpoint_step": (("checkpoint",), ck),
            "probe_label": (("probe",), self.y_probe),
            "probe_clean_label": (("probe",), self.y_probe),
            "probe_split": (("probe",), np.array(["train"] * yp.size)),
            "probe_index": (("probe",), np.arange(yp.size, dtype=np.int64)),
        }
        self._create = {"variables": layout, "coords": coords,
                        "attrs": {"n_classes": K, "class_names": names, "n_trials": n_trials,
                                  "n_steps": n_steps, "batch_size": 1, "recorder": 1,
                                  "time_unit": "SGD iterations"}}  # fmt: skip
        self.writer = None
        self._buf: dict[int, list] = {}
        self._tracked: dict[int, tuple] = {}
        self._optimizers: dict[int, dict | None] = {}

    # ------------------------------------------------------------------ context
    def __enter__(self) -> Recorder:
        from lesde.rundir import config_diff, mismatch
        from lesde.store import RunWriter, read_json, run_status

        status = run_status(self.out)
        if status == "missing":
            self.writer = RunWriter(self.out, config=self.config,
                                    meta={"steps_done_per_trial": [0] * self.R,
                                          "checkpoints_done": [[] for _ in range(self.R)]},
                                    **self._create)  # fmt: skip
        else:
            diffs = config_diff(read_json(self.out / "config.json"), self.config)
            if diffs:
                raise mismatch(self.out, diffs, what="recording")
            if status == "complete":
                self.writer = None
                self.complete = True
                return self
            self.writer = RunWriter(self.out, config=self.config, resume=True)
        self.complete = False
        if self._optimizers:  # tracked before entering
            self._write_optimizers()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.writer is None:
            return
        if exc_type is None:
            for r in list(self._buf):
                self._flush(r)
            meta = self.writer.meta
            done = all(s == self.S for s in meta["steps_done_per_trial"])
            cks = all(len(c) == self.ck.size for c in meta["checkpoints_done"])
            if done and cks:
                self.writer.mark_complete()
                self.complete = True
                for p in (self.out / "state").glob("trial*.pt"):
                    p.unlink()
                if (self.out / "state").exists() and not any((self.out / "state").iterdir()):
                    (self.out / "state").rmdir()
            else:
                import warnings

                why = "; ".join(incomplete_trials(meta, self.config))
                warnings.warn(
                    f"Recorder {self.out}: the record is incomplete (left 'running'): {why}. "
                    "It stays resumable: rerun the loop with the same Recorder arguments; it "
                    "continues from the last written chunk",
                    UserWarning,
                    stacklevel=2,
                )

    # ------------------------------------------------------------------ resume
    def track(self, trial: int, model: Any, optimizer: Any = None) -> None:
        """Save ``model`` (and ``optimizer``) of ``trial`` with every written chunk.

        The optimizer's class and settings are recorded in ``meta.json`` (``"optimizers"``,
        `optimizer_caveat`); without one, the record says that the optimizer is unknown.

        Args:
            trial: r in [0, R).
            model: the trial's ``nn.Module`` (its ``state_dict`` is saved).
            optimizer: the ``torch.optim.Optimizer`` that trains it, or None.
        """
        self._check_trial(trial)
        self._tracked[trial] = (model, optimizer)
        self._optimizers[trial] = None if optimizer is None else describe_optimizer(optimizer)
        if self.writer is not None:
            self._write_optimizers()

    def start(self, trial: int) -> int:
        """The step to continue ``trial`` from: steps already stored (0 for a new run).

        The tracked model and optimizer are restored to their state at that step.
        """
        self._check_trial(trial)
        if self.writer is None:  # complete
            return self.S
        done = int(self.writer.meta["steps_done_per_trial"][trial])
        self._buf[trial] = []
        path = self.out / "state" / f"trial{trial}.pt"
        if done and trial in self._tracked and path.exists():
            import torch

            saved = torch.load(path, weights_only=True)
            model, opt = self._tracked[trial]
            model.load_state_dict(saved["model"])
            if opt is not None and "optimizer" in saved:
                opt.load_state_dict(saved["optimizer"])
        return done

    def is_checkpoint(self, step: int) -> bool:
        return int(step) in self._ck_index

    # ------------------------------------------------------------------ records
    def step(self, trial: int, logits: Any, label: Any, *, loss: Any = None,
             index: Any = None) -> None:  # fmt: skip
        """Record the next step of ``trial``: the trained sample's logits before the update.

        Args:
            trial: r in [0, R).
            logits: (1, K) or (K,) logits (a tensor is detached and copied).
            label: its training label. loss: its loss (default NaN). index: its index.
        """
        if self.writer is None:
            raise RuntimeError("the Recorder is not open (use it in a `with` block)")
        self._check_trial(trial)
        z = _numpy(logits).reshape(-1)
        if z.size != self.K:
            raise ValueError(f"`logits` must hold K = {self.K} values, got shape "
                             f"{tuple(np.shape(_numpy(logits)))}")  # fmt: skip
        self._maybe_flush(trial)
        buf = self._buf.setdefault(trial, [])
        done = int(self.writer.meta["steps_done_per_trial"][trial]) + len(buf)
        if done >= self.S:
            raise ValueError(f"trial {trial}: all {self.S} steps are recorded already")
        lab = int(_numpy(label).reshape(-1)[0])
        ls = float("nan") if loss is None else float(_numpy(loss).reshape(-1)[0])
        idx = -1 if index is None else int(_numpy(index).reshape(-1)[0])
        buf.append((z, lab, ls, idx))

    def checkpoint(self, trial: int, step: int, model: Any = None, *, probe_logits: Any = None,
                   features: Any = None, val_loss: float = float("nan"),
                   val_acc: float = float("nan")) -> None:  # fmt: skip
        """Record ``trial``'s probe logits at checkpoint ``step``.

        Give ``model`` (evaluated on the probes and the validation set under
        ``torch.no_grad()``), or ``probe_logits`` (P, K) and optionally ``val_loss``,
        ``val_acc`` yourself (not both ways). ``features`` (P, n_features) are required
        when the Recorder has ``n_features`` and refused otherwise.

        Raises:
            ValueError: ``step`` is not a checkpoint, or the arguments contradict (named).
        """
        if self.writer is None:
            raise RuntimeError("the Recorder is not open (use it in a `with` block)")
        self._check_trial(trial)
        c = self._ck_index.get(int(step))
        if c is None:
            raise ValueError(f"`step` {step} is not a checkpoint ({self.ck.tolist()})")
        val_loss, val_acc = float(val_loss), float(val_acc)
        given = [n for n, v in (("probe_logits", probe_logits is not None),
                                ("val_loss", not math.isnan(val_loss)),
                                ("val_acc", not math.isnan(val_acc))) if v]  # fmt: skip
        if model is not None and given:
            raise ValueError(f"`model` is evaluated on the probes and the validation set; "
                             f"`{'`, `'.join(given)}` would be overwritten: give one or the "
                             "other")  # fmt: skip
        if model is None and probe_logits is None:
            raise ValueError("`model` or `probe_logits` is required, got neither")
        if model is None and self.val is not None and "val_loss" not in given:
            raise ValueError("the Recorder's `val` set is evaluated only with `model`; with "
                             "`probe_logits` pass `val_loss` (and `val_acc`) yourself")  # fmt: skip
        if self.n_features is None and features is not None:
            raise ValueError("`features`: the Recorder records none (`n_features` is None); "
                             "give Recorder(..., n_features=F)")  # fmt: skip
        if self.n_features is not None:
            want = (self.y_probe.size, self.n_features)
            if features is None:
                raise ValueError(f"`features` {want} is required: the Recorder was given "
                                 f"`n_features`={self.n_features}")  # fmt: skip
            f = _numpy(features).astype(np.float32)
            if f.shape != want:
                raise ValueError(f"`features` must be {want}, got {f.shape}")
        self._maybe_flush(trial)
        if model is not None:
            probe_logits, val_loss, val_acc = self._evaluate(model)
        z = _numpy(probe_logits).astype(np.float32)
        if z.shape != (self.y_probe.size, self.K):
            raise ValueError(f"`probe_logits` must be ({self.y_probe.size}, {self.K}), "
                             f"got {z.shape}")  # fmt: skip
        reg = (slice(trial, trial + 1), slice(c, c + 1))
        self.writer.write("probe_logits", reg, z[None, None])
        self.writer.write("val_loss", reg, np.array([[val_loss]]))
        self.writer.write("val_acc", reg, np.array([[val_acc]]))
        if self.n_features is not None:
            self.writer.write("probe_features", reg, f[None, None])
        cks = self.writer.meta["checkpoints_done"]
        if c not in cks[trial]:
            cks[trial] = sorted([*cks[trial], c])
            self.writer.update_meta(checkpoints_done=cks)

    # ------------------------------------------------------------------ internals
    def _check_trial(self, trial: Any) -> None:
        if (
            isinstance(trial, bool)
            or not isinstance(trial, int | np.integer)
            or not (0 <= trial < self.R)
        ):
            raise ValueError(f"`trial` must be an int in [0, {self.R}), got {trial!r}")

    def _write_optimizers(self) -> None:
        opts = list(self.writer.meta.get("optimizers") or [None] * self.R)
        for r, d in self._optimizers.items():
            opts[r] = d
        if opts != self.writer.meta.get("optimizers"):
            self.writer.update_meta(optimizers=opts)

    def _evaluate(self, model: Any):
        import torch

        dev = next(model.parameters()).device
        dt = next(model.parameters()).dtype
        with torch.no_grad():
            pz = model(torch.as_tensor(self.x_probe, dtype=dt, device=dev)).cpu().numpy()
            vl = va = float("nan")
            if self.val is not None:
                xv, yv = self.val
                z = model(torch.as_tensor(xv, dtype=dt, device=dev))
                yt = torch.as_tensor(yv, device=dev).long()
                vl = float(torch.nn.functional.cross_entropy(z.double(), yt))
                va = float((z.argmax(-1) == yt).double().mean())
        return pz, vl, va

    def _maybe_flush(self, trial: int) -> None:
        """Write a full chunk once the model has made its last update (the next call)."""
        buf = self._buf.get(trial) or []
        stored = int(self.writer.meta["steps_done_per_trial"][trial])
        if buf and (stored + len(buf)) % self.cs == 0:
            self._flush(trial)

    def _flush(self, trial: int) -> None:
        buf = self._buf.get(trial) or []
        if not buf:
            return
        meta = self.writer.meta
        s0 = int(meta["steps_done_per_trial"][trial])
        s1 = s0 + len(buf)
        reg = (slice(trial, trial + 1), slice(s0, s1))
        z = np.stack([b[0] for b in buf])[None].astype(np.float32)
        lab = np.array([[b[1] for b in buf]], dtype=np.int16)
        self.writer.write("sample_logits", reg, z)
        self.writer.write("sample_label", reg, lab)
        self.writer.write("sample_clean_label", reg, lab)
        self.writer.write("sample_loss", reg, np.array([[b[2] for b in buf]], dtype=np.float32))
        self.writer.write("sample_index", reg, np.array([[b[3] for b in buf]], dtype=np.int32))
        if trial in self._tracked:  # the state at step s1, written before the progress
            import torch

            model, opt = self._tracked[trial]
            state = {"model": model.state_dict()}
            if opt is not None:
                state["optimizer"] = opt.state_dict()
            (self.out / "state").mkdir(exist_ok=True)
            tmp = self.out / "state" / f".trial{trial}.pt.tmp"
            torch.save(state, tmp)
            os.replace(tmp, self.out / "state" / f"trial{trial}.pt")
        steps = list(meta["steps_done_per_trial"])
        steps[trial] = s1
        self.writer.update_meta(steps_done_per_trial=steps, steps_done=min(steps))
        self._buf[trial] = []


def _numpy(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def incomplete_trials(
    meta: dict[str, Any], config: dict[str, Any], *, limit: int | None = 5
) -> list[str]:
    """Why a Recorder record is not complete, one phrase per incomplete trial.

    Args:
        meta: its ``meta.json`` (``steps_done_per_trial``, ``checkpoints_done``).
        config: its ``config.json`` (``"recorder"``: n_trials, n_steps, checkpoints).
        limit: at most this many trials are described, then ``"and N more trials"``.

    Returns:
        e.g. ``["trial 0: checkpoint at step 2000 not recorded — call
        rec.checkpoint(0, 2000, net) after the last step"]``; empty when complete.
    """
    rc = config["recorder"]
    S, ck = int(rc["n_steps"]), [int(c) for c in rc["checkpoints"]]
    steps = meta.get("steps_done_per_trial") or [0] * int(rc["n_trials"])
    done_ck = meta.get("checkpoints_done") or [[] for _ in steps]
    out = []
    for r, (s, cs) in enumerate(zip(steps, done_ck, strict=False)):
        why = []
        if int(s) < S:
            why.append(f"{s} of {S} steps recorded")
        missing = [ck[c] for c in range(len(ck)) if c not in set(cs)]
        if missing == [S] and int(s) == S:
            why.append(f"checkpoint at step {S} not recorded — call rec.checkpoint({r}, {S}, "
                       "net) after the last step")  # fmt: skip
        elif missing:
            shown = ", ".join(str(m) for m in missing[:6]) + (", ..." if len(missing) > 6 else "")
            why.append(f"{len(missing)} of {len(ck)} checkpoints not recorded (steps {shown})")
        if why:
            out.append(f"trial {r}: {', '.join(why)}")
    if limit is not None and len(out) > limit:
        out = [*out[:limit], f"and {len(out) - limit} more trials"]
    return out
