"""A stand-in training record from the LE particle process, with known α, β (tests, demos)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from lesde.store import write_json_atomic

__all__ = ["synthetic_record"]


def synthetic_record(
    out: Path,
    *,
    n_trials: int = 8,
    n_steps: int = 600,
    n_per_class: int = 20,
    n_checkpoints: int = 13,
    alpha: Callable | float | None = None,
    beta: Callable | float | None = None,
    sigma: float = 0.05,
    seed: int = 0,
) -> Path:
    """Write a stand-in training record produced by the LE particle process (eq. 4).

    The particle process *is* the LE model of SGD: at every step one (class, sample) is
    drawn and every particle moves. Its record has the trainer's layout (``sample_logits``,
    ``sample_label``, ``probe_logits``, ``probe_label``, ``probe_split``, ``val_loss``,
    ``val_acc``), so the whole pipeline can be exercised, with known α, β, without
    training a network. Used by the tests and as an example of bringing one's own
    trajectories.

    Args:
        out: directory to create (``record.zarr`` and ``synthetic.json`` inside).
        n_trials: R independent runs.
        n_steps: steps per run.
        n_per_class: particles (samples) per class; all are probes.
        n_checkpoints: probe checkpoints, evenly spaced including 0 and ``n_steps``.
        alpha, beta: the true rates (per iteration), floats or callables of t; default
            α(t) = 0.03·(1+t/50)^(−0.5), β(t) = −0.005·(1+t/50)^(−0.5), a locally
            elastic pair whose class means separate (r_γ = 0.5 < 1).
        sigma: per-step noise of each particle.
        seed: seed of everything.

    Returns:
        ``out``.
    """
    import xarray as xr

    from lesde.model import LEModel
    from lesde.simulate.particles import simulate_particles

    K = 3
    out = Path(out)
    if alpha is None:
        alpha = lambda t: 0.03 * (1 + np.asarray(t) / 50) ** -0.5  # noqa: E731
    if beta is None:
        beta = lambda t: -0.005 * (1 + np.asarray(t) / 50) ** -0.5  # noqa: E731
    model = LEModel(K, K, alpha=alpha, beta=beta, H="L")
    rng = np.random.default_rng(seed)
    x0 = 0.3 * rng.standard_normal((K, K)) + 0.5 * (np.eye(K) - 1 / K)
    res = simulate_particles(
        model,
        n_steps,
        n_per_class=n_per_class,
        h=1.0,
        sigma=sigma,
        x0=x0,
        seed=seed,
        n_paths=n_trials,
        init_spread=0.2,
    )
    P = res.particles  # (R, S+1, K, n, p)
    R = n_trials
    r_idx = np.arange(R)[:, None]
    m_idx = np.arange(n_steps)[None, :]
    # logits of the trained sample before update m+1, i.e. at state m
    sample_logits = P[r_idx, m_idx, res.classes, res.samples]  # (R, S, K)
    ck = np.unique(np.linspace(0, n_steps, n_checkpoints).round().astype(int))
    probe = P[:, ck].reshape(R, ck.size, K * n_per_class, K)  # (R, C, P, K)
    probe_label = np.repeat(np.arange(K), n_per_class)
    # softmax cross-entropy and accuracy of the probes stand in for validation metrics
    zmax = probe.max(axis=-1, keepdims=True)
    logp = probe - zmax - np.log(np.exp(probe - zmax).sum(axis=-1, keepdims=True))
    val_loss = -np.take_along_axis(logp, probe_label[None, None, :, None], -1)[..., 0].mean(-1)
    val_acc = (probe.argmax(-1) == probe_label).mean(-1)
    ds = xr.Dataset(
        {
            "sample_logits": (("trial", "step", "logit"), sample_logits.astype(np.float32)),
            "sample_label": (("trial", "step"), res.classes.astype(np.int64)),
            "probe_logits": (("trial", "checkpoint", "probe", "logit"), probe.astype(np.float32)),
            "probe_label": (("probe",), probe_label),
            "val_loss": (("trial", "checkpoint"), val_loss),
            "val_acc": (("trial", "checkpoint"), val_acc),
        },
        coords={"step": np.arange(1, n_steps + 1), "checkpoint_step": ("checkpoint", ck)},
        attrs={"n_classes": K, "synthetic": 1},
    )
    out.mkdir(parents=True, exist_ok=True)
    ds.to_zarr(out / "record.zarr", mode="w", consolidated=False)
    truth = {"alpha": alpha if not callable(alpha) else "callable", "sigma": sigma}
    truth["beta"] = beta if not callable(beta) else "callable"
    write_json_atomic(out / "synthetic.json", {"seed": seed, "truth": truth})
    return out
