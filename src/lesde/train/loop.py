"""The training loop: chunks of steps, thread blocks of trials, recording, divergence,
and the state saved after every chunk (what a resumed run continues from)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from lesde.train.config import TrainConfig, TrainingDiverged, draw_samples, step_by_step
from lesde.train.engine_cnn import EnsembleCNN
from lesde.train.prepare import _evaluate, _Prepared


class _Group:
    """A contiguous block of trials [lo, hi) with its own engine (run by one thread)."""

    def __init__(self, eng: EnsembleCNN, lo: int, hi: int) -> None:
        self.eng, self.lo, self.hi = eng, lo, hi


# most steps per engine call: long enough to amortise the call and the parameters' trip
# through the cache (one per call and trial), short enough for a smooth progress bar
_SEGMENT = 50


def _steps(
    eng: Any, x_train: torch.Tensor, idx: torch.Tensor, y: torch.Tensor, lr: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """L steps of ``eng`` on samples ``idx`` (R, L, B): logits (L, R, B, K), losses (L, R, B).

    Engines with a ``run_steps`` method make them in one call; others step by step.
    """
    if hasattr(eng, "run_steps"):
        return eng.run_steps(x_train, idx, y, lr)
    return step_by_step(eng, x_train, idx, y, lr)


def _split(n_trials: int, n_groups: int) -> list[tuple[int, int]]:
    b = np.linspace(0, n_trials, n_groups + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(b[:-1], b[1:], strict=True) if hi > lo]


def _run_chunk(
    g: _Group,
    prep: _Prepared,
    cfg: TrainConfig,
    s0: int,
    s1: int,
    idx: torch.Tensor,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    """Steps s0+1 .. s1 of one group's trials, with the checkpoints and LE steps inside.

    Args:
        idx: (R_g, L, B) training indices of the group for these steps.

    Returns:
        {"logits": (L, R_g, B, K), "loss": (L, R_g, B), "ck": {step: eval},
        "le": {step: (before, after)}} (arrays on the CPU for the evaluations).
    """
    eng, Rg = g.eng, g.hi - g.lo
    B, K = cfg.batch_size, prep.n_classes
    L = s1 - s0
    ck = set(prep.ck_steps.tolist())
    le = set(cfg.le_steps)
    y_all = prep.y_train_t[idx]  # (R_g, L, B)
    logits_buf = torch.empty((L, Rg, B, K), dtype=prep.dtype, device=prep.device)
    loss_buf = torch.empty((L, Rg, B), dtype=prep.dtype, device=prep.device)
    out: dict[str, Any] = {"ck": {}, "le": {}}
    i = 0
    while i < L:
        m = s0 + i + 1  # this update makes step m
        if m - 1 in ck:
            out["ck"][m - 1] = _evaluate(eng, prep)
        if m in le:
            before = eng.forward_shared(prep.x_probe)[0].cpu().numpy()
            z, loss = eng.step(eng.batch(prep.x_train, idx[:, i]), y_all[:, i], cfg.lr)
            logits_buf[i], loss_buf[i] = z, loss
            out["le"][m] = (before, eng.forward_shared(prep.x_probe)[0].cpu().numpy())
            j = i + 1
        else:
            # the steps up to the next evaluation in one call where the engine has one
            # (the compiled "cnn" step: one kernel call, each trial's steps in turn)
            j = i + 1
            while j < L and j - i < _SEGMENT and s0 + j not in ck and s0 + j + 1 not in le:
                j += 1
            z, loss = _steps(eng, prep.x_train, idx[:, i:j], y_all[:, i:j], cfg.lr)
            logits_buf[i:j], loss_buf[i:j] = z, loss
        if progress is not None:
            progress(j - i)
        i = j
    if s1 == cfg.n_steps and s1 in ck:
        out["ck"][s1] = _evaluate(eng, prep)
    out["logits"] = logits_buf.cpu().numpy()
    out["loss"] = loss_buf.cpu().numpy()
    return out


def _loop(
    groups: list[_Group],
    prep: _Prepared,
    cfg: TrainConfig,
    sink: Any,
    writer: Any,
    start: int,
    progress: Callable[[int], None] | None,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    R, S, cs, B = cfg.n_trials, cfg.n_steps, cfg.chunk_steps, cfg.batch_size
    K = prep.n_classes
    ck_index = {int(s): i for i, s in enumerate(prep.ck_steps)}
    le_index = {m: j for j, m in enumerate(cfg.le_steps)}
    batch_dim = () if B == 1 else (slice(None),)
    all_ = slice(None)

    # progress is reported by the first group only (all groups advance together)
    def prog(i: int) -> Callable[[int], None] | None:
        return progress if i == 0 else None

    pool = ThreadPoolExecutor(len(groups)) if len(groups) > 1 else None
    try:
        for s0 in range(start - start % cs, S, cs):
            chunk = s0 // cs
            s1 = min(s0 + cs, S)
            L = s1 - s0
            idx_np = np.stack([draw_samples(cfg, prep.y_train, K, r, chunk) for r in range(R)])
            idx_np = idx_np[:, :L]  # (R, L, B)
            idx = torch.as_tensor(idx_np, device=prep.device)
            jobs = [(g, prep, cfg, s0, s1, idx[g.lo : g.hi], prog(i)) for i, g in enumerate(groups)]
            if pool is None:
                parts = [_run_chunk(*jobs[0])]
            else:
                parts = list(pool.map(lambda a: _run_chunk(*a), jobs))
            # checkpoints: concatenate the groups' trials
            for step in sorted(parts[0]["ck"]):
                c = ck_index[step]
                reg = (all_, slice(c, c + 1))
                for name in ("probe_logits", "val_loss", "val_acc", "probe_features"):
                    if name == "probe_features" and not cfg.record_features:
                        continue
                    v = np.concatenate([p["ck"][step][name] for p in parts], axis=0)
                    sink.write(name, reg, v[:, None])
            lg = np.concatenate([p["logits"] for p in parts], axis=1).transpose(1, 0, 2, 3)
            ls = np.concatenate([p["loss"] for p in parts], axis=1).transpose(1, 0, 2)
            for m in sorted(parts[0]["le"]):
                j = le_index[m]
                before = np.concatenate([p["le"][m][0] for p in parts], axis=0)
                after = np.concatenate([p["le"][m][1] for p in parts], axis=0)
                lab = prep.y_train[idx_np[:, m - s0 - 1, 0]]
                # training records; the direct LE itself (le_E, le_alpha, le_beta) is
                # derived from these by `lesde.estimate.direct.add_direct_le` when read
                reg = (all_, slice(j, j + 1))
                sink.write("le_probe_before", reg, before[:, None])
                sink.write("le_probe_after", reg, after[:, None])
                sink.write("le_class", reg, lab[:, None].astype(np.int16))
            # (R, L, B, K) -> (R, L[, B], K)
            bad = ~np.isfinite(ls)
            if B == 1:
                lg, ls = lg[:, :, 0], ls[:, :, 0]
            idx_w = idx_np if B > 1 else idx_np[..., 0]
            n_ok = L
            if bad.any():
                n_ok = int(np.argwhere(bad.any(axis=(0, 2)))[0, 0]) + 1  # keep the bad step
            reg = (all_, slice(s0, s0 + n_ok), *batch_dim)
            sink.write("sample_logits", reg, lg[:, :n_ok])
            sink.write("sample_loss", reg, ls[:, :n_ok])
            sink.write("sample_index", reg, idx_w[:, :n_ok].astype(np.int32))
            sink.write("sample_label", reg, prep.y_train[idx_w[:, :n_ok]].astype(np.int16))
            sink.write("sample_clean_label", reg, prep.y_clean[idx_w[:, :n_ok]].astype(np.int16))
            if bad.any():
                trial = int(np.argwhere(bad.any(axis=2)[:, n_ok - 1])[0, 0])
                step = s0 + n_ok
                msg = (
                    f"non-finite loss at step {step} in trial {trial} "
                    f"(lr={cfg.lr}); data up to that step are kept"
                )
                if writer is not None:
                    writer.mark_diverged(step=step, trial=trial, message=msg, steps_done=step)
                raise TrainingDiverged(msg)
            if writer is not None:
                state = [g.eng.state() for g in groups]
                writer.save_state({n: torch.cat([st[n] for st in state]) for n in state[0]}, s1)
    finally:
        if pool is not None:
            pool.shutdown()
