"""Bootstrap over trials for the tail indices r̂_α, r̂_β, r̂_γ, and the separation verdict.

Trials are the independent units of a run: resample R of them with replacement,
recompute X̄(t) from the resampled trials' class sums, invert it to Â, B̂ (`estimate_ab`)
and fit the tail indices (`lesde.estimate.tail`). The percentile interval of the
resampled r̂ carries the between-trial variability; the share of resamples with
r̂_γ < 1 says how often the verdict would flip.

The interval's verdict is three-valued (Theorem 3.1 predicts separation iff r_γ < 1):
"separable" when the whole interval lies below 1, "not separable" when above,
"undetermined" when it straddles 1. `tail_verdict` adds the two values that withhold it:
"power law does not fit" when the fit of Γ fails its goodness-of-fit check
(`lesde.estimate.tail_check`), and "not applicable" when the theorem's premise fails on
the run (the noise vanishes on the tail window, `lesde.estimate.diffusion.noise_premise`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from lesde.estimate.ab import estimate_ab
from lesde.estimate.class_means import class_sums_from_samples  # noqa: F401 (its home)
from lesde.estimate.tail import fit_tail_many

__all__ = [
    "VERDICTS",
    "TAIL_VERDICTS",
    "verdict",
    "tail_verdict",
    "bootstrap_tail_indices",
    "class_sums_from_samples",
]

VERDICTS = ("separable", "not separable", "undetermined")
TAIL_VERDICTS = VERDICTS + ("power law does not fit", "not applicable")


def verdict(lo: float, hi: float, threshold: float = 1.0) -> str:
    """ "separable" if ``hi < threshold``, "not separable" if ``lo > threshold``, else
    "undetermined" (also when either end is NaN)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "undetermined"
    if hi < threshold:
        return "separable"
    if lo > threshold:
        return "not separable"
    return "undetermined"


def tail_verdict(
    lo: float, hi: float, *, fit_check: Any = None, premise: dict | None = None
) -> tuple[str, str]:
    """The tail-index verdict and why: the premise first, then the fit, then the interval.

    Args:
        lo, hi: the interval of r̂_γ.
        fit_check: a `lesde.estimate.tail_check.TailCheck` of the fit of Γ (None: not checked).
        premise: `noise_premise` of the run (None: not checked).

    Returns:
        (value from `TAIL_VERDICTS`, the reason in one line: "" for an interval verdict).
    """
    if premise is not None and premise.get("holds") is False:
        return "not applicable", premise.get("why", "")
    if fit_check is not None and not fit_check.fits:
        return "power law does not fit", fit_check.why
    return verdict(lo, hi), ""


def bootstrap_tail_indices(
    sums: Any,
    counts: Any,
    ts: Any,
    *,
    t0_index: int,
    t_range: tuple[float, float] | None,
    models: tuple[str, ...] = ("I", "L"),
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Percentile intervals of r̂_α, r̂_β, r̂_γ from resampling trials.

    Args:
        sums: (R, T, K, p) per-trial sums of the features entering X̄ at each grid point
            (or per-trial class means with ``counts`` all ones).
        counts: (R, T, K) how many features each sum holds.
        ts: (T,) the grid.
        t0_index: the reference index of the inversion.
        t_range: the tail window of the fits (None: the fit's default).
        models: H models to invert.
        n_boot: resamples.
        level: interval level.
        seed: seed of the resampling.

    Returns:
        Per model: ``r_alpha_ci``, ``r_beta_ci``, ``r_gamma_ci`` as [lo, hi],
        ``r_gamma_below_1`` (share of resamples with r̂_γ < 1), ``n_boot`` (resamples with a
        finite r̂_γ) and the resampled values ``samples`` {name: (n_boot,)}.
    """
    S = np.asarray(sums, dtype=float)
    N = np.asarray(counts, dtype=float)
    t = np.asarray(ts, dtype=float)
    R = S.shape[0]
    if R < 2:
        raise ValueError(f"the bootstrap over trials needs >= 2 trials, got {R}")
    if n_boot < 10:
        raise ValueError(f"`n_boot` must be >= 10, got {n_boot}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB007]))
    w = rng.multinomial(R, np.full(R, 1.0 / R), size=n_boot).astype(float)  # (n_boot, R)
    num = np.einsum("br,rtkj->btkj", w, S)  # (n_boot, T, K, p)
    den = np.einsum("br,rtk->btk", w, N)  # (n_boot, T, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        xb = num / den[..., None]
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    out: dict[str, dict[str, Any]] = {}
    for H in models:
        series = {"r_alpha": [], "r_beta": [], "r_gamma": []}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-resample NaN/sign notes: the point fit warns
            for b in range(n_boot):
                ab = estimate_ab(xb[b], t, model=H, t0_index=t0_index)
                series["r_alpha"].append(ab.A)
                series["r_beta"].append(ab.B)
                series["r_gamma"].append(ab.A - ab.B)
        res: dict[str, Any] = {"samples": {}}
        for name, rows in series.items():
            fits = fit_tail_many(t, np.stack(rows), t_range=t_range, intervals=False)
            vals = np.array([f.s if f is not None else np.nan for f in fits])
            res["samples"][name] = vals
            ok = vals[np.isfinite(vals)]
            ci = [float(v) for v in np.percentile(ok, q)] if ok.size >= 10 else [np.nan] * 2
            res[f"{name}_ci"] = ci
        g = res["samples"]["r_gamma"]
        ok = g[np.isfinite(g)]
        res["r_gamma_below_1"] = float(np.mean(ok < 1)) if ok.size else float("nan")
        res["n_boot"] = int(ok.size)
        out[H] = res
    return out
