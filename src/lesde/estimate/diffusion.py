"""The diffusion Σ(t) from the record, and the margin-to-noise ratio that decides separation.

In the LE-SDE (paper eq. 5) the drift of every particle depends on the class means
only, so a particle's deviation from its class mean is pure noise:
d(X_i^k − X̄^k) = Σ^{1/2} d(W_i^k − W̄^k). Each deviation's variance grows by
(1 − 1/n)∫σ², and the within-class sample variance (per coordinate, ddof = 1: the n − 1
removes exactly the class mean's share) therefore grows by the accumulated diffusion,

    V(t) = V(t₀) + ∫_{t₀}^t σ²(u) du      (Σ = σ² I),

and σ̂²(t) = dV/dt. (Until v0.1 of this stage σ̂² was divided once more by 1 − 1/n, an
overestimate by n/(n − 1): 5 % with 20 probes per class.)

Against it stands the deterministic class margin. By the closed forms
(docs/math.md §3) the class deviations evolve as c_k·e^{(A−B)/K} under the I-model (and the
margin sum S(t) of the L-model as S(0)·e^{(A−B)/K}), so the margin between classes at t is
gap(t₀)·e^{(Â(t)−B̂(t))/K}. The margin-to-noise ratio

    ρ(t) = gap(t₀)·e^{(Â(t)−B̂(t))/K} / √V(t)

is what decides separability of the particle clouds (paper §3.2.1, after eq. 7): with
γ ≈ c/t and constant Σ, the margin grows like t^{c/K} and the noise like t^{1/2}, so the
clouds separate iff c/K > 1/2, although the tail index of γ is exactly 1 there. A
decaying σ(t) ~ t^{−q} lowers the noise exponent to 1/2 − q. The verdict is read off the
trend of ρ: the least-squares slope of log ρ against log(1+t) on the tail window, with a
bootstrap-over-trials interval ("separable" if the interval is above 0, "not
separable" if below, "undetermined" if it straddles 0). This is the quantity the tail
index alone cannot give at the boundary r_γ = 1, where trained networks sit.

Both are asymptotic statements. At the end of a finite run, what decides whether the
clouds are apart is the level of the measured ratio (each trial's smallest class-mean
gap over its within-class sd) against ρ*, the ratio at which Gaussian clouds of the same
size are linearly separable half the time (`lesde.analysis.margin`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "within_class_variance",
    "DiffusionEstimate",
    "estimate_diffusion",
    "MarginNoise",
    "margin_to_noise",
    "noise_premise",
    "NOISE_VANISHED",
]


def within_class_variance(features: Any, labels: Any, n_classes: int) -> np.ndarray:
    """Per-coordinate within-class variance of features around their class mean.

    V = mean over classes k and coordinates j of the unbiased sample variance of
    X_{i,j}^k over the samples i of class k.

    Args:
        features: (..., P, p) features of P samples (e.g. (R, C, P, p): trials,
            checkpoints, probes, logits).
        labels: (P,) class of each sample; every class needs >= 2 samples.
        n_classes: K.

    Returns:
        (...) the variance V.
    """
    z = np.asarray(features, dtype=float)
    lab = np.asarray(labels)
    if lab.ndim != 1 or z.ndim < 2 or z.shape[-2] != lab.size:
        raise ValueError(
            f"`features` must be (..., P, p) with P = len(labels) = {lab.size}, got {z.shape}"
        )
    parts = []
    for k in range(n_classes):
        sel = lab == k
        if np.count_nonzero(sel) < 2:
            raise ValueError(f"`labels` must hold >= 2 samples of every class; class {k} has "
                             f"{int(np.count_nonzero(sel))}")  # fmt: skip
        parts.append(z[..., sel, :].var(axis=-2, ddof=1).mean(axis=-1))
    return np.mean(parts, axis=0)


@dataclass(frozen=True)
class DiffusionEstimate:
    """Σ̂(t) = σ̂²(t)·I from the growth of the within-class variance.

    Attributes:
        ts: (C,) times.
        V: (C,) within-class variance, averaged over trials.
        V_trials: (R, C) per trial.
        accumulated: (C,) V(t) − V(t₀), the estimate of ∫_{t₀}^t σ².
        sigma2: (C,) σ̂²(t) = dV/dt (central differences; one-sided at the ends).
        n_per_class: n, the samples per class behind each variance.
    """

    ts: np.ndarray
    V: np.ndarray
    V_trials: np.ndarray
    accumulated: np.ndarray
    sigma2: np.ndarray
    n_per_class: float


def estimate_diffusion(ts: Any, features: Any, labels: Any, n_classes: int) -> DiffusionEstimate:
    """Estimate σ²(t) from how the samples' spread around their class mean grows.

    Args:
        ts: (C,) strictly increasing checkpoint times.
        features: (R, C, P, p) features of P samples (probes) in R trials at C times.
        labels: (P,) their classes.
        n_classes: K.

    Returns:
        A `DiffusionEstimate`.
    """
    from lesde.model import check_ts

    t = check_ts(ts)
    z = np.asarray(features, dtype=float)
    if z.ndim != 4 or z.shape[1] != t.size:
        raise ValueError(f"`features` must be (R, {t.size}, P, p), got shape {z.shape}")
    Vr = within_class_variance(z, labels, n_classes)  # (R, C)
    V = Vr.mean(axis=0)
    n = float(np.asarray(labels).size) / n_classes
    sigma2 = np.gradient(V, t) if t.size >= 2 else np.full_like(V, np.nan)
    return DiffusionEstimate(t, V, Vr, V - V[0], sigma2, n)


@dataclass(frozen=True)
class MarginNoise:
    """The margin-to-noise ratio ρ(t) and its verdict.

    Attributes:
        ts: (C,) times.
        margin: (C,) gap(t₀)·e^{(Â−B̂)/K}.
        noise: (C,) √V(t).
        ratio: (C,) ρ(t) = margin / noise.
        slope: d log ρ / d log(1+t) on the window (the ratio's growth exponent).
        slope_ci: [lo, hi] bootstrap-over-trials interval of the slope (NaN without trials).
        verdict: "separable" (slope interval > 0), "not separable" (< 0), "undetermined".
        t_range: the window.
    """

    ts: np.ndarray
    margin: np.ndarray
    noise: np.ndarray
    ratio: np.ndarray
    slope: float
    slope_ci: list[float]
    verdict: str
    t_range: tuple[float, float]


def _slope(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of each row of Y against x: (m,)."""
    xc = x - x.mean()
    Yc = Y - Y.mean(axis=-1, keepdims=True)
    return (Yc @ xc) / (xc @ xc)


def margin_to_noise(
    ts: Any,
    V_trials: Any,
    gap0: float,
    gamma_integral: Any,
    n_classes: int,
    *,
    t_range: tuple[float, float] | None = None,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> MarginNoise:
    """ρ(t) = gap(t₀)·e^{Γ(t)/K} / √V(t) with Γ = Â − B̂, its trend and verdict.

    Args:
        ts: (C,) times of the variances (and of Γ).
        V_trials: (R, C) within-class variance per trial (`within_class_variance`).
        gap0: the class-mean gap at the reference time t₀ (where Γ = 0): the smallest
            distance between two class means.
        gamma_integral: (C,) Γ(t) = Â(t) − B̂(t) on ``ts`` (0 at t₀).
        n_classes: K.
        t_range: window of the slope; default: the last half of the span.
        n_boot: bootstrap resamples of trials for the slope's interval (the noise part;
            Γ enters as estimated).
        level: interval level.
        seed: seed of the resampling.

    Returns:
        A `MarginNoise`.
    """
    from lesde.estimate.bootstrap import verdict as _verdict
    from lesde.model import check_ts

    t = check_ts(ts)
    Vr = np.atleast_2d(np.asarray(V_trials, dtype=float))
    G = np.asarray(gamma_integral, dtype=float)
    if Vr.shape[1] != t.size or G.shape != t.shape:
        raise ValueError(
            f"`V_trials` (R, {t.size}) and `gamma_integral` ({t.size},) must match `ts`, "
            f"got {Vr.shape} and {G.shape}"
        )
    if not (np.isfinite(gap0) and gap0 > 0):
        raise ValueError(f"`gap0` must be a finite number > 0, got {gap0!r}")
    if t_range is None:
        t_range = (t[-1] - 0.5 * (t[-1] - t[0]), t[-1])
    t1, t2 = (float(v) for v in t_range)
    margin = gap0 * np.exp(G / n_classes)
    V = Vr.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        noise = np.sqrt(V)
        ratio = margin / noise
    win = (t >= t1) & (t <= t2) & np.isfinite(ratio) & (ratio > 0)
    if np.count_nonzero(win) < 3:
        warnings.warn(
            f"margin_to_noise: fewer than 3 usable points in t_range=({t1:g}, {t2:g})",
            stacklevel=2,
        )
        nan = float("nan")
        return MarginNoise(t, margin, noise, ratio, nan, [nan, nan], "undetermined", (t1, t2))
    x = np.log1p(t[win])
    slope = float(_slope(x, np.log(ratio[win])[None, :])[0])
    ci = [float("nan")] * 2
    R = Vr.shape[0]
    if R >= 2 and n_boot >= 10:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD1FF]))
        w = rng.multinomial(R, np.full(R, 1.0 / R), size=n_boot) / R  # (n_boot, R)
        Vb = w @ Vr[:, win]  # (n_boot, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            logr = np.log(margin[win])[None, :] - 0.5 * np.log(Vb)
        sl = _slope(x, logr)
        sl = sl[np.isfinite(sl)]
        if sl.size >= 10:
            q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
            ci = [float(v) for v in np.percentile(sl, q)]
    return MarginNoise(t, margin, noise, ratio, slope, ci, _verdict(-ci[1], -ci[0], 0.0)
                       if np.all(np.isfinite(ci)) else "undetermined", (t1, t2))  # fmt: skip


# The premise check's threshold: the noise counts as vanished when V grows on the tail
# window at less than this share of its fastest growth earlier in the run.
NOISE_VANISHED = 0.05


def noise_premise(ts: Any, V: Any, t_range: tuple[float, float]) -> dict[str, Any]:
    """Is the noise Theorem 3.1 assumes there on the tail window? (Σ > 0 that does not vanish)

    The theorem's threshold r_γ < 1 weighs a margin growing like e^{Γ/K} against a
    diffusion that keeps adding spread. When the within-class spread stops growing on the
    tail window (σ̂² ≈ 0 there, as when the loss and the gradients vanish) or shrinks (a
    drift on the deviations, which the LE-SDE does not have), the theorem's premise fails
    on the run and its verdict does not apply.

    The check: ``late_rate``, the least-squares slope of V(t) on the tail window, against
    ``ref_rate``, the largest slope of V on any window of a tenth of the run (the fastest
    the noise added spread anywhere). The premise holds when late_rate > `NOISE_VANISHED` ·
    ref_rate.

    Args:
        ts: (C,) checkpoint times. V: (C,) the within-class variance (mean over trials).
        t_range: (T₁, T₂) the tail window.

    Returns:
        {"holds": bool | None (None: too few checkpoints), "late_rate", "ref_rate", "ratio",
        "why"}.
    """
    t = np.asarray(ts, dtype=float)
    v = np.asarray(V, dtype=float)
    t1, t2 = t_range
    win = (t >= t1) & (t <= t2) & np.isfinite(v)
    nan = float("nan")
    if np.count_nonzero(win) < 3 or t.size < 6:
        return {"holds": None, "late_rate": nan, "ref_rate": nan, "ratio": nan,
                "why": "too few checkpoints on the tail window to measure Σ̂"}  # fmt: skip
    late = float(np.polyfit(t[win], v[win], 1)[0])
    w = max(2, int(round(0.1 * t.size)))
    ref = max(float((v[i + w] - v[i]) / (t[i + w] - t[i])) for i in range(t.size - w))
    ratio = late / ref if ref > 0 else nan
    holds = bool(ref > 0 and late > NOISE_VANISHED * ref)
    why = ""
    if not holds:
        why = (
            f"the estimated noise Σ̂ vanishes on the tail window t ∈ [{t1:.4g}, {t2:.4g}]: "
            f"the within-class variance grows there at {late:.3g} per step, "
            f"{ratio:.1%} of its fastest growth ({ref:.3g}) earlier in the run (the theorem "
            f"needs noise that does not vanish; < {NOISE_VANISHED:.0%} counts as vanished)"
        )
        if late < 0:
            why = (f"the within-class spread shrinks on the tail window t ∈ [{t1:.4g}, {t2:.4g}] "
                   f"(slope {late:.3g} per step): there is no diffusion to weigh the margin "
                   "against, and the LE-SDE (whose deviations are pure noise) cannot shrink a "
                   "cloud")  # fmt: skip
    return {"holds": holds, "late_rate": late, "ref_rate": ref, "ratio": ratio, "why": why}
