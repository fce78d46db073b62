"""The shared chain of every training experiment: train → estimate → simulate → analyse.

A run directory holds:

- ``train/``: the trainer's run store (`lesde.open_run` reads it);
- ``estimates.npz``: X̄(t), Â, B̂, α̂, β̂ under both H models (paper §4.1, Fig. 3);
- ``simulate.npz``: LE-ODE paths driven by the estimates and their RD (paper §4.2, Fig. 5);
- ``analysis.npz``: separability, ETF deviation over time, direct local elasticity,
  the full Ê(t) (docs/math.md §4, §6);
- ``summary.json``: the key numbers and, per stage, what it wrote. It is rewritten
  atomically after every stage, so an interrupted ``lesde run`` resumes: a stage is
  skipped when ``summary.json`` marks it done and its output file is present.

Every array file is written to a temporary name and moved into place (``os.replace``),
so a kill leaves either the old state or the new one, never half a file. ``.npz`` files
are read with ``allow_pickle=False``.

How X̄(t) is formed (``PipelineConfig.xbar_source``):

- ``"samples"`` (the paper's way): at every step each trial records the logits of the
  sample it trains on, before the update. X̄^k on a bin of ``bin_width`` steps is the
  average of those logits over all trials and steps in the bin whose label is k (the
  paper averages over trials per step; binning in time pools a few steps so that
  fewer trials suffice). The grid is the bins' mean step.
- ``"probe"``: the class means of the fixed probe set (training probes) at the
  checkpoints, averaged over trials.

The per-trial class means of the probe set always feed the full Ê(t) and the ETF
deviation over time.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lesde.store import jsonable, load_npz, save_npz_atomic, write_json_atomic

__all__ = [
    "PipelineConfig",
    "STAGES",
    "run_pipeline",
    "load_summary",
    "write_json_atomic",
    "save_npz_atomic",
    "load_npz",
    "class_means_from_samples",
    "probe_class_means",
    "synthetic_record",
    "open_record",
]

STAGES = ("train", "estimate", "simulate", "analyse")
SUMMARY = "summary.json"
# Bumped when a stage's output changes meaning; a run directory whose stage was written
# by an older version recomputes it (and everything after it) on the next `lesde run`.
# estimate 2: tail indices by the fit of A (intervals, verdicts); analyse 2: Σ̂ and ρ(t).
# estimate/analyse 3: classes by their original label (PipelineConfig.classes); analyse 4:
# the finite-time margin-to-noise level.
STAGE_VERSIONS = {"train": 1, "estimate": 3, "simulate": 1, "analyse": 4}


@dataclass(frozen=True)
class PipelineConfig:
    """Options of the estimate/simulate/analyse stages (the trainer has its own).

    Attributes:
        xbar_source: "samples" (paper: logits of trained samples, averaged over trials)
            or "probe" (probe-set class means at checkpoints).
        classes: "clean" (default): a sample's class is its original label, and label
            corruption enters only through the sampling — the LE-SDE of paper §4.2, whose
            W = P/K with the corruption matrix P mixes the true classes; the class means,
            separability and collapse are those of the true classes. "train": the
            training label after corruption. The two agree when p_err = 0.
        bin_width: steps per time bin for ``"samples"``; 10 pools ~10·R/K logits per class
            per point, enough for a smooth X̄(t) with R = 30–100 trials.
        t0_index: reference grid index t₀ of the inversion and start of the simulations
            (docs/math.md §4); None: ``t0_fraction`` of the grid.
        t0_fraction: t₀ as a fraction of the grid when ``t0_index`` is None. At
            initialisation the class means nearly coincide and their margins have random
            signs; the L-model amplifies whatever margins it starts from, so a simulation
            from t = 0 grew the wrong pattern (RD ≈ 2 on GeoMNIST) while one from 5% of
            the run, once the margins have their sign, followed the genuine paths.
        rate_window: Savitzky–Golay window for the plotted rates; None: an odd number
            near 1/10 of the grid, within [11, 191] (the paper: 191 at 10⁵ steps).
        sim_window: window of the rates that drive the simulation (paper: 21).
        n_paths: simulated LE-ODE paths (paper: 500).
        init_noise: spread τ of the initial points of the band paths, in units of the
            paper's N(0, ‖X̄^k(0)‖²/K) (`simulate_from_estimates`). The paper's τ = 1 is
            amplified by the fitted growth into bands ~25× the logits on GeoMNIST; 0.1
            keeps the band readable. RD uses the path from X̄(0) itself.
        late_fraction: the last fraction of the grid over which RD is averaged.
        tail_fraction: the tail indices fit Â, B̂ and Â − B̂ (`lesde.estimate.tail`) on
            the last ``tail_fraction`` of the time span. Real runs are not power laws
            from the start: Â − B̂ rises fast and then grows slowly, and on the default
            GeoMNIST run windows from 5 % / 25 % / 50 % of the run gave ŝ_γ ≈ 2.2 / 1.7 /
            0.76: an early window reads the approach to the slow growth as a fast decay.
            The last half is the default; every run's sensitivity table shows the last
            25 / 50 / 75 %. None: the fit's own default (the last 3/4).
        le_window: checkpoints per least-squares window of Ê(t); None: ~1/6 of them.
        n_boot: bootstrap resamples of Ê(t).
        tail_boot: bootstrap resamples of trials for the intervals of r̂_α, r̂_β, r̂_γ
            (`lesde.estimate.bootstrap`); 0 turns them off. 200 gives the 2.5 % / 97.5 %
            percentiles from the 5th and 195th values.
        seed: seed of the simulation and bootstrap.
    """

    xbar_source: str = "samples"
    classes: str = "clean"
    bin_width: int = 10
    t0_index: int | None = None
    t0_fraction: float = 0.05
    rate_window: int | None = None
    sim_window: int = 21
    n_paths: int = 500
    init_noise: float = 0.1
    late_fraction: float = 0.25
    tail_fraction: float | None = 0.5
    le_window: int | None = None
    n_boot: int = 100
    tail_boot: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.classes not in ("clean", "train"):
            raise ValueError(f"`classes` must be 'clean' or 'train', got {self.classes!r}")
        if self.xbar_source not in ("samples", "probe"):
            raise ValueError(
                f"`xbar_source` must be 'samples' or 'probe', got {self.xbar_source!r}"
            )
        if (
            isinstance(self.tail_boot, bool)
            or not isinstance(self.tail_boot, int)
            or (self.tail_boot != 0 and self.tail_boot < 10)
        ):
            raise ValueError(f"`tail_boot` must be 0 or an int >= 10, got {self.tail_boot!r}")
        for name in ("bin_width", "sim_window", "n_paths"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        if not 0 <= self.t0_fraction < 1:
            raise ValueError(f"`t0_fraction` must be in [0, 1), got {self.t0_fraction!r}")
        if not 0 < self.late_fraction <= 1:
            raise ValueError(f"`late_fraction` must be in (0, 1], got {self.late_fraction!r}")


# ---------------------------------------------------------------- atomic files


def load_summary(run_dir: Path, *, broken: str = "raise") -> dict[str, Any]:
    """The run's ``summary.json`` ({} when absent).

    Args:
        broken: what a file that is not a JSON object gives: "raise" a ValueError naming
            it (readers: figures, report), or "warn" and {} (the pipeline, which then
            recomputes the stages; the training record checks itself).
    """
    from lesde.rundir import read_summary

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


def _stage_done(run_dir: Path, summary: dict, stage: str, outputs: list[str]) -> bool:
    info = summary.get("stages", {}).get(stage)
    return bool(
        info
        and info.get("done")
        and info.get("version", 1) == STAGE_VERSIONS[stage]
        and all(_readable(run_dir / o) for o in outputs)
    )


def _mark(run_dir: Path, summary: dict, stage: str, outputs: list[str], seconds: float) -> None:
    summary.setdefault("stages", {})[stage] = {
        "done": True,
        "version": STAGE_VERSIONS[stage],
        "outputs": outputs,
        "seconds": round(seconds, 3),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json_atomic(run_dir / SUMMARY, summary)


# ---------------------------------------------------------------- class means


def class_means_from_samples(
    sample_logits: Any, sample_label: Any, steps: Any, n_classes: int, *, bin_width: int
) -> tuple[np.ndarray, np.ndarray]:
    """X̄^k(t) from the logits of the trained samples (the paper's estimate of X̄(t)).

    Args:
        sample_logits: (R, S, K) logits of the sample trained at each step (before update).
        sample_label: (R, S) its (training) label.
        steps: (S,) step index of each record.
        n_classes: K.
        bin_width: steps pooled per grid point.

    Returns:
        ``ts`` (T,) mean step of each bin and ``xbar`` (T, K, K); a bin with no sample of
        some class is dropped (warned).
    """
    x = np.asarray(sample_logits, dtype=float)
    y = np.asarray(sample_label)
    s = np.asarray(steps, dtype=float)
    if x.ndim != 3 or y.shape != x.shape[:2] or s.shape != (x.shape[1],):
        raise ValueError(
            "`sample_logits` (R, S, K), `sample_label` (R, S) and `steps` (S,) must agree, "
            f"got {x.shape}, {y.shape}, {s.shape}"
        )
    R, S, K = x.shape
    nb = S // bin_width
    if nb < 2:
        raise ValueError(f"`bin_width`={bin_width} leaves {nb} bins of {S} steps; need >= 2")
    xs = x[:, : nb * bin_width].reshape(R, nb, bin_width, K)
    ys = y[:, : nb * bin_width].reshape(R, nb, bin_width)
    onehot = ys[..., None] == np.arange(n_classes)  # (R, nb, w, K_label)
    counts = onehot.sum(axis=(0, 2))  # (nb, K)
    sums = np.einsum("rbwk,rbwj->bkj", onehot.astype(float), xs)  # (nb, K_label, K_logit)
    ts = s[: nb * bin_width].reshape(nb, bin_width).mean(axis=1)
    ok = np.all(counts > 0, axis=1)
    if not ok.all():
        warnings.warn(
            f"{int((~ok).sum())} of {nb} time bins lack a sample of some class; dropped",
            stacklevel=2,
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        xbar = sums / counts[..., None]
    return ts[ok], xbar[ok]


def probe_class_means(probe_logits: Any, probe_label: Any, n_classes: int) -> np.ndarray:
    """Per-trial class means of probe logits.

    Args:
        probe_logits: (R, C, P, K) probe logits at C checkpoints.
        probe_label: (P,) probe labels.
        n_classes: K.

    Returns:
        (R, C, K, K) class means (class index, then logit).
    """
    z = np.asarray(probe_logits, dtype=float)
    lab = np.asarray(probe_label)
    out = np.stack([z[:, :, lab == k].mean(axis=2) for k in range(n_classes)], axis=2)
    return out  # (R, C, K, K)


# ---------------------------------------------------------------- record access


def open_record(train_dir: Path):
    """Open a run store as an ``xarray.Dataset`` (via `lesde.open_run`).

    A directory written by `synthetic_record` (marked by ``synthetic.json``) is opened
    with xarray directly.
    """
    import xarray as xr

    train_dir = Path(train_dir)
    if (train_dir / "synthetic.json").exists():
        return xr.open_zarr(train_dir / "record.zarr", consolidated=False).load()
    from lesde.store import open_run

    return open_run(train_dir)


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


# ---------------------------------------------------------------- stages


def _odd_window(n: int, frac: float, lo: int, hi: int) -> int:
    w = int(round(n * frac))
    w = max(lo, min(hi, w, n if n % 2 else n - 1))
    return w if w % 2 else w - 1


def _fill_nan(y: np.ndarray) -> np.ndarray:
    """Replace NaN by the nearest finite value (rates at trimmed ends), 0 if none."""
    y = np.asarray(y, dtype=float).copy()
    ok = np.isfinite(y)
    if not ok.any():
        return np.zeros_like(y)
    idx = np.arange(y.size)
    y[~ok] = np.interp(idx[~ok], idx[ok], y[ok])
    return y


def _record_arrays(ds, classes: str = "clean") -> dict[str, np.ndarray]:
    """The variables the stages need, as numpy arrays.

    ``classes="clean"``: samples and probes are grouped by their original (true) class
    when the record has it (``sample_clean_label``, ``probe_clean_label``); "train": by
    the training label after corruption. See `PipelineConfig.classes`.
    """
    K = int(ds.sizes["logit"])
    step = ds["step"].values if "step" in ds.coords else np.arange(1, ds.sizes["step"] + 1)
    split = None
    if "probe_split" in ds:  # zarr v3 strings arrive as numpy StringDType
        split = np.array([str(v) for v in ds["probe_split"].values.tolist()])
    return {
        "K": K,
        "sample_logits": ds["sample_logits"].values,
        "sample_label": ds[_label_var(ds, "sample", classes)].values,
        "step": np.asarray(step, dtype=float),
        "probe_logits": ds["probe_logits"].values,
        "probe_label": ds[_label_var(ds, "probe", classes)].values,
        "probe_split": split,
        "checkpoint_step": np.asarray(ds["checkpoint_step"].values, dtype=float),
        "val_loss": ds["val_loss"].values,
        "val_acc": ds["val_acc"].values,
    }


def _label_var(ds, kind: str, classes: str) -> str:
    clean = f"{kind}_clean_label"
    return clean if classes == "clean" and clean in ds else f"{kind}_label"


def _train_probes(rec: dict) -> np.ndarray:
    split = rec["probe_split"]
    if split is None:
        return np.ones(rec["probe_label"].shape, dtype=bool)
    train = split == "train"
    return train if train.any() else np.ones_like(train)


# tail windows (fraction of the span) and Savitzky–Golay factors of the sensitivity table
SENSITIVITY_TAILS = (0.25, 0.5, 0.75)
SENSITIVITY_SG = (0.5, 1.0, 2.0)


def _sensitivity(ts: np.ndarray, G: np.ndarray, span, rw: int) -> list[dict[str, Any]]:
    """r̂_γ for tail windows and Savitzky–Golay windows around the defaults.

    Rows: the A-fit on the last 25 / 50 / 75 % of the span, and the rate form (log-log
    slope of |γ̂|, γ̂ by Savitzky–Golay at ½, 1, 2 × the rate window) on the default window.
    """
    from lesde.estimate.bootstrap import verdict
    from lesde.estimate.tail import fit_tail_many, rate_slope_index

    rows: list[dict[str, Any]] = []
    spans = [(ts[-1] - f * (ts[-1] - ts[0]), ts[-1]) for f in SENSITIVITY_TAILS]
    for f, sp in zip(SENSITIVITY_TAILS, spans, strict=True):
        fit = fit_tail_many(ts, G[None, :], t_range=sp)[0]
        lo, hi = (fit.lo, fit.hi) if fit else (np.nan, np.nan)
        rows.append({
            "method": "fit", "tail_fraction": f, "sg_window": None,
            "r_gamma": fit.s if fit else np.nan, "interval": [lo, hi],
            "verdict": verdict(lo, hi),
        })  # fmt: skip
    for m in SENSITIVITY_SG:
        w = max(5, int(round(rw * m)) | 1)
        w = min(w, ts.size if ts.size % 2 else ts.size - 1)
        r = rate_slope_index(ts, G, window=w, t_range=span)
        rows.append({
            "method": "rate", "tail_fraction": None if span is None else
            float((span[1] - span[0]) / (ts[-1] - ts[0])), "sg_window": w,
            "r_gamma": r, "interval": None, "verdict": None,
        })  # fmt: skip
    return rows


def _tail_bootstrap(rec: dict, cfg: PipelineConfig, ts, xbar_trials, i0: int, span):
    """`bootstrap_tail_indices` on the trials of the record (None for a single trial)."""
    from lesde.estimate.bootstrap import bootstrap_tail_indices, class_sums_from_samples

    R = xbar_trials.shape[0]
    if R < 2 or cfg.tail_boot == 0:
        return None
    if cfg.xbar_source == "samples":
        sums, counts = class_sums_from_samples(
            rec["sample_logits"], rec["sample_label"], rec["K"], bin_width=cfg.bin_width
        )
        ok = np.all(counts.sum(axis=0) > 0, axis=1)  # the bins class_means_from_samples kept
        sums, counts = sums[:, ok], counts[:, ok]
    else:
        sums, counts = xbar_trials, np.ones(xbar_trials.shape[:3])
    return bootstrap_tail_indices(
        sums, counts, ts, t0_index=i0, t_range=span, n_boot=cfg.tail_boot, seed=cfg.seed
    )


def _stage_estimate(rec: dict, cfg: PipelineConfig) -> tuple[dict, dict]:
    from lesde.estimate.ab import estimate_ab
    from lesde.estimate.bootstrap import verdict
    from lesde.estimate.rates import estimate_rates, tail_index
    from lesde.estimate.tail import fit_tail_many, warn_unidentified

    K = rec["K"]
    tr = _train_probes(rec)
    xbar_trials = probe_class_means(
        rec["probe_logits"][:, :, tr], rec["probe_label"][tr], K
    )  # (R, C, K, K)
    if cfg.xbar_source == "samples":
        ts, xbar = class_means_from_samples(
            rec["sample_logits"], rec["sample_label"], rec["step"], K, bin_width=cfg.bin_width
        )
    else:
        ts, xbar = rec["checkpoint_step"], xbar_trials.mean(axis=0)
    T = ts.size
    i0 = cfg.t0_index if cfg.t0_index is not None else int(round(cfg.t0_fraction * (T - 1)))
    if not 0 <= i0 < T - 2:
        raise ValueError(f"`t0_index` must be in [0, {T - 3}] for {T} grid points, got {i0}")
    rw = cfg.rate_window or _odd_window(T, 0.1, 11, 191)
    sw = min(cfg.sim_window, T if T % 2 else T - 1)
    arrays: dict[str, np.ndarray] = {"ts": ts, "xbar": xbar, "xbar_trials": xbar_trials}
    arrays["checkpoint_step"] = rec["checkpoint_step"]
    arrays["t0_index"] = np.array(i0)
    span = None
    if cfg.tail_fraction is not None:
        span = (ts[-1] - cfg.tail_fraction * (ts[-1] - ts[0]), ts[-1])
    numbers: dict[str, Any] = {"rate_window": rw, "sim_window": sw, "n_grid": T, "t0": ts[i0]}
    boot = _tail_bootstrap(rec, cfg, ts, xbar_trials, i0, span)
    numbers["tail_method"] = "fit"
    numbers["tail_boot"] = cfg.tail_boot
    for H in ("I", "L"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ab = estimate_ab(xbar, ts, model=H, t0_index=i0)
            alpha, beta = estimate_rates(ts, ab.A, ab.B, window=rw)
            alpha_s, beta_s = estimate_rates(ts, ab.A, ab.B, window=sw)
            fits = fit_tail_many(ts, np.stack([ab.A, ab.B, ab.A - ab.B]), t_range=span)
            r_alpha, r_beta, r_gamma = (f.s if f is not None else np.nan for f in fits)
            for f in fits:
                if f is not None:
                    warn_unidentified(f)
            r_gamma_slope = tail_index(ts, ab.A - ab.B, t_range=span, method="slope")
            sens = _sensitivity(ts, ab.A - ab.B, span, rw)
        arrays.update(
            {
                f"A_{H}": ab.A,
                f"B_{H}": ab.B,
                f"alpha_{H}": alpha,
                f"beta_{H}": beta,
                f"alpha_sim_{H}": alpha_s,
                f"beta_sim_{H}": beta_s,
                f"r_gamma_boot_{H}": boot[H]["samples"]["r_gamma"] if boot else np.array([]),
            }
        )
        late = ts >= ts[-1] - min(1000.0, 0.1 * (ts[-1] - ts[0]))
        g_fit = fits[2]
        ci = boot[H]["r_gamma_ci"] if boot else [np.nan, np.nan]
        numbers[H] = {
            "tail_range": [float(v) for v in (span or g_fit.t_range)] if g_fit else None,
            "r_alpha": r_alpha,
            "r_beta": r_beta,
            # r̂_γ of γ = α − β from Γ = Â − B̂ (method "fit"); the paper's Fig. 4c reads
            # it off as min{r̂_α, r̂_β}, kept as r_gamma_paper; the landed slope form
            # (saturates below 1) as r_gamma_slope
            "r_gamma": r_gamma,
            "r_gamma_paper": float(np.nanmin([r_alpha, r_beta])),
            "r_gamma_slope": r_gamma_slope,
            "r_alpha_ci": boot[H]["r_alpha_ci"] if boot else [np.nan, np.nan],
            "r_beta_ci": boot[H]["r_beta_ci"] if boot else [np.nan, np.nan],
            "r_gamma_ci": ci,
            "r_gamma_below_1": boot[H]["r_gamma_below_1"] if boot else np.nan,
            "r_gamma_profile_ci": [g_fit.lo, g_fit.hi] if g_fit else [np.nan, np.nan],
            "r_gamma_identifiable": bool(g_fit.identifiable) if g_fit else False,
            "verdict": verdict(*ci),
            "sensitivity": sens,
            "A_final": float(ab.A[-1]),
            "B_final": float(ab.B[-1]),
            "gamma_late_mean": float(np.nanmean((alpha - beta)[late])),
            "alpha_late_mean": float(np.nanmean(alpha[late])),
            "beta_late_mean": float(np.nanmean(beta[late])),
            "negative_fraction": float(ab.negative_fraction),
            "n_nan": int(ab.n_nan),
            "warnings": sorted({str(w.message)[:200] for w in caught}),
        }
    return arrays, numbers


def _stage_simulate(est: dict, cfg: PipelineConfig) -> tuple[dict, dict]:
    from lesde.analysis.fit import relative_difference
    from lesde.simulate.from_estimates import simulate_from_estimates

    i0 = int(est["t0_index"])  # simulate from t₀ on (see PipelineConfig.t0_fraction)
    ts, xbar = est["ts"][i0:], est["xbar"][i0:]
    T = ts.size
    late = np.arange(T) >= T - max(1, int(round(cfg.late_fraction * T)))
    arrays: dict[str, np.ndarray] = {"ts": ts, "xbar": xbar}
    numbers: dict[str, Any] = {"late_fraction": cfg.late_fraction}
    # "own": simulate each H model with its own rates; "paper": the L-model with either
    # estimate (paper Fig. 5).
    for rates in ("I", "L"):
        a = _fill_nan(est[f"alpha_sim_{rates}"][i0:])
        b = _fill_nan(est[f"beta_sim_{rates}"][i0:])
        for variant, sim_model in (("own", rates), ("paper", "L")):
            key = f"{variant}_{rates}"
            if variant == "paper" and rates == "L":
                arrays[f"mean_{key}"] = arrays["mean_own_L"]
                arrays[f"sd_{key}"] = arrays["sd_own_L"]
                arrays[f"rd_{key}"] = arrays["rd_own_L"]
                numbers[key] = numbers["own_L"]
                continue
            # The LE-ODE is linear, so the mean over paths started around X̄(0) is the path
            # from X̄(0) itself: RD uses that exact path (Monte Carlo noise in the mean of
            # exponentially amplified initial spreads swamped the signal in trials); the
            # spread over n_paths perturbed starts gives the ± sd band of Fig. 5.
            det = simulate_from_estimates(
                ts, a, b, xbar[0], model=sim_model, n_paths=1, init_noise=0.0, save_at=[]
            )
            band = simulate_from_estimates(
                ts, a, b, xbar[0], model=sim_model, n_paths=cfg.n_paths,
                init_noise=cfg.init_noise, seed=cfg.seed, save_at=[],
            )  # fmt: skip
            rd = relative_difference(det.mean, xbar)  # (T, K)
            arrays[f"mean_{key}"], arrays[f"sd_{key}"], arrays[f"rd_{key}"] = (
                det.mean,
                band.sd,
                rd,
            )
            numbers[key] = {
                "rd_late": float(np.nanmean(rd[late])),
                "rd_final": float(np.nanmean(rd[-1])),
            }
    numbers["rd_late"] = {H: numbers[f"own_{H}"]["rd_late"] for H in ("I", "L")}
    numbers["rd_late_paper"] = {H: numbers[f"paper_{H}"]["rd_late"] for H in ("I", "L")}
    return arrays, numbers


def _direct_le(ds, est: dict) -> tuple[dict, dict]:
    """Direct (step-level) α̂, β̂ from the store's ``le_alpha``/``le_beta`` (docs/math.md §4).

    The sign check uses the measured steps in the later 90% of training (at the first
    steps the margins of the trained sample are ~0 and the ratio is dominated by noise)
    and the median over trials at each step (single steps have heavy tails), averaged
    over those steps; it is compared with the L-model inversion α̂(t), β̂(t) interpolated
    at the same steps.
    """
    if ds is None or "le_alpha" not in ds or ds.sizes.get("le_step", 0) == 0:
        return {}, {"available": False}
    steps = np.asarray(ds["le_step"].values, dtype=float)  # (M,)
    alpha_d = np.asarray(ds["le_alpha"].values, dtype=float)  # (R, M)
    beta_d = np.asarray(ds["le_beta"].values, dtype=float)  # (R, M)
    out = {"le_steps": steps, "le_alpha": alpha_d, "le_beta": beta_d}
    ts = est["ts"]
    use = steps >= ts[0] + 0.1 * (ts[-1] - ts[0])
    if not use.any():
        use = np.ones_like(use)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        a_med = float(np.nanmean(np.nanmedian(alpha_d[:, use], axis=0)))
        b_med = float(np.nanmean(np.nanmedian(beta_d[:, use], axis=0)))
    inv_a = float(np.mean(np.interp(steps[use], ts, _fill_nan(est["alpha_L"]))))
    inv_b = float(np.mean(np.interp(steps[use], ts, _fill_nan(est["beta_L"]))))
    return out, {
        "available": True,
        "n_steps_compared": int(use.sum()),
        "alpha_direct": a_med,
        "beta_direct": b_med,
        "alpha_inverted": inv_a,
        "beta_inverted": inv_b,
        "alpha_sign_agrees": bool(np.sign(a_med) == np.sign(inv_a)),
        "beta_sign_agrees": bool(np.sign(b_med) == np.sign(inv_b)),
    }


def _stage_analyse(ds, rec: dict, est: dict, cfg: PipelineConfig) -> tuple[dict, dict]:
    from lesde.analysis.collapse import etf_deviation, neural_collapse
    from lesde.analysis.separation import is_separable

    K = rec["K"]
    tr = _train_probes(rec)
    Z = rec["probe_logits"][:, :, tr]  # (R, C, P, K)
    lab = rec["probe_label"][tr]
    R, C = Z.shape[:2]
    sep = np.array([is_separable(Z[r, -1], lab) for r in range(R)])
    sep0 = np.array([is_separable(Z[r, 0], lab) for r in range(R)])
    means = est["xbar_trials"]  # (R, C, K, K)
    with np.errstate(invalid="ignore"):
        etf_trials = np.asarray(etf_deviation(means))  # (R, C)
        etf_mean_path = np.asarray(etf_deviation(means.mean(axis=0)))  # (C,)
    nc = [neural_collapse(Z[r, -1], lab) for r in range(R)]
    arrays: dict[str, np.ndarray] = {
        "checkpoint_step": rec["checkpoint_step"],
        "etf_trials": etf_trials,
        "etf_mean_path": etf_mean_path,
        "separable_final": sep,
        "val_loss": rec["val_loss"],
        "val_acc": rec["val_acc"],
    }
    numbers: dict[str, Any] = {
        "val_acc_final": float(np.nanmean(rec["val_acc"][:, -1])),
        "val_acc_final_sd": float(np.nanstd(rec["val_acc"][:, -1])),
        "val_loss_final": float(np.nanmean(rec["val_loss"][:, -1])),
        "val_loss_initial": float(np.nanmean(rec["val_loss"][:, 0])),
        "separable_fraction_final": float(sep.mean()),
        "separable_fraction_initial": float(sep0.mean()),
        "etf_deviation_final": float(np.nanmedian(etf_trials[:, -1])),
        "etf_deviation_initial": float(np.nanmedian(etf_trials[:, 0])),
        "nc1_final": float(np.median([m.nc1 for m in nc])),
    }
    numbers["learning"] = learning_check(rec["val_acc"], rec["val_loss"], K)
    # full Ê(t) from per-trial probe class means (L-model similarity, logits)
    if R >= 3 and C >= 7:
        from lesde.estimate.le_matrix import estimate_le_matrix

        win = cfg.le_window or max(3, (C // 6) | 1)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                le = estimate_le_matrix(
                    means, est["checkpoint_step"], H="L", window=win, step=1, n_boot=cfg.n_boot,
                    seed=cfg.seed,
                )  # fmt: skip
            arrays.update({"E_ts": le.ts, "E": le.E, "E_lo": le.lo, "E_hi": le.hi})
            off = ~np.eye(K, dtype=bool)
            numbers["le_matrix"] = {
                "window": win,
                "alpha_late": float(np.nanmean(np.diagonal(le.E[-1]))),
                "beta_late": float(np.nanmean(le.E[-1][off])),
            }
        except ValueError as err:
            numbers["le_matrix"] = {"error": str(err)}
    d_arrays, d_numbers = _direct_le(ds, est)
    arrays.update(d_arrays)
    numbers["direct"] = d_numbers
    try:
        m_arrays, m_numbers = _margin_noise(Z, lab, K, est, cfg, sep)
        arrays.update(m_arrays)
        numbers["margin_noise"] = m_numbers
    except ValueError as err:  # e.g. a class with < 2 probes
        numbers["margin_noise"] = {"error": str(err)}
    return arrays, numbers


def learning_check(val_acc: Any, val_loss: Any, n_classes: int) -> dict[str, Any]:
    """Did the networks learn? Final validation accuracy against chance, loss against start.

    The run did not learn when the final accuracy (mean over trials) is within noise of
    chance 1/K, i.e. less than max(3 standard errors over trials, 0.05) above it (the
    floor keeps a few lucky validation samples from counting as learning), or when the
    final validation loss is not below 95 % of the initial one. Its verdicts are then
    not meaningful (they describe networks that never left their initialisation).

    Args:
        val_acc, val_loss: (R, C) per trial at the checkpoints.
        n_classes: K.
    """
    acc = np.asarray(val_acc, dtype=float)[:, -1]
    loss = np.asarray(val_loss, dtype=float)
    chance = 1.0 / n_classes
    acc = acc[np.isfinite(acc)]
    mean = float(acc.mean()) if acc.size else float("nan")
    se = float(acc.std(ddof=1) / np.sqrt(acc.size)) if acc.size > 1 else 0.0
    margin = max(3 * se, 0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ratio = float(np.nanmean(loss[:, -1]) / np.nanmean(loss[:, 0]))
    above = bool(np.isfinite(mean) and mean - chance >= margin)
    fell = bool(np.isfinite(ratio) and ratio < 0.95)
    learned = above and fell
    why = []
    if not above:
        why.append(f"validation accuracy {mean:.3f} is within {margin:.3f} of chance {chance:.3f}")
    if not fell:
        why.append(f"validation loss ended at {ratio:.0%} of its initial value")
    return {
        "learned": learned, "val_acc_final": mean, "chance": chance, "margin": margin,
        "loss_ratio": ratio, "why": "; ".join(why),
    }  # fmt: skip


def _margin_noise(Z, lab, K: int, est: dict, cfg: PipelineConfig, sep) -> tuple[dict, dict]:
    """Σ̂(t) from the train probes' within-class spread and the margin-to-noise ratio ρ(t)
    under both H models (`lesde.estimate.diffusion`), beside the directly measured ratio
    (per-trial class-mean gap over the spread) and the genuine separability."""
    from lesde.estimate.diffusion import estimate_diffusion, margin_to_noise

    cts = np.asarray(est["checkpoint_step"], dtype=float)
    d = estimate_diffusion(cts, Z, lab, K)
    ts, i0 = est["ts"], int(est["t0_index"])
    span = None
    if cfg.tail_fraction is not None:
        span = (ts[-1] - cfg.tail_fraction * (ts[-1] - ts[0]), ts[-1])
    x0 = est["xbar"][i0]  # (K, K)
    gap0 = float(min(np.linalg.norm(x0[k] - x0[m]) for k in range(K) for m in range(k)))
    arrays: dict[str, np.ndarray] = {
        "diff_ts": cts, "diff_V": d.V, "diff_sigma2": d.sigma2, "mn_noise": np.sqrt(d.V),
    }  # fmt: skip
    numbers: dict[str, Any] = {
        "gap0": gap0,
        "t0": float(ts[i0]),
        "V_initial": float(d.V[0]),
        "V_final": float(d.V[-1]),
        "separable_fraction_final": float(np.mean(sep)),
    }
    use = cts >= ts[i0]
    for H in ("I", "L"):
        G = np.interp(cts, ts, _fill_nan(est[f"A_{H}"] - est[f"B_{H}"]))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mn = margin_to_noise(
                cts[use], d.V_trials[:, use], gap0, G[use], K, t_range=span, seed=cfg.seed
            )
        arrays[f"mn_ts_{H}"], arrays[f"mn_ratio_{H}"] = mn.ts, mn.ratio
        numbers[H] = {
            "slope": mn.slope,
            "slope_ci": mn.slope_ci,
            "verdict": mn.verdict,
            "ratio_final": float(mn.ratio[-1]),
            "t_range": list(mn.t_range),
            "warnings": sorted({str(w.message)[:200] for w in caught}),
        }
    # the measured ratio: each trial's smallest class-mean gap over its own spread
    means = est["xbar_trials"]  # (R, C, K, K)
    gaps = np.min([np.linalg.norm(means[:, :, k] - means[:, :, m], axis=-1)
                   for k in range(K) for m in range(k)], axis=0)  # (R, C)  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = np.median(gaps / np.sqrt(d.V_trials), axis=0)  # (C,)
    arrays["mn_ratio_direct"] = direct
    t1, t2 = span if span is not None else (cts[0], cts[-1])
    win = (cts >= t1) & (cts <= t2) & np.isfinite(direct) & (direct > 0)
    slope_d = float("nan")
    if np.count_nonzero(win) >= 3:
        slope_d = float(np.polyfit(np.log1p(cts[win]), np.log(direct[win]), 1)[0])
    numbers["direct"] = {"slope": slope_d, "ratio_final": float(direct[-1])}
    # the finite-time verdict: the trials' measured ratio at the end against ρ*, the ratio
    # at which Gaussian clouds of this many probes are separable half the time
    from lesde.estimate.diffusion import ratio_level, separation_threshold

    n_probe = int(np.min(np.bincount(np.asarray(lab), minlength=K)))
    rho_star = separation_threshold(n_probe, Z.shape[-1], K)
    numbers["level"] = ratio_level(gaps[:, -1], d.V_trials[:, -1], rho_star, seed=cfg.seed)
    numbers["level"]["n_per_class"] = n_probe
    late = cts >= t1
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = late & (d.sigma2 > 0)
        numbers["sigma2_slope"] = (
            float(np.polyfit(np.log1p(cts[pos]), np.log(d.sigma2[pos]), 1)[0])
            if np.count_nonzero(pos) >= 3
            else float("nan")
        )
    return arrays, numbers


# ---------------------------------------------------------------- driver


def key_numbers(summary: dict) -> dict[str, Any]:
    """The headline numbers of a run (final accuracy, tail indices, RD, separability)."""
    est = summary.get("estimate", {})
    sim = summary.get("simulate", {})
    ana = summary.get("analyse", {})
    key: dict[str, Any] = {}
    if ana and "learning" in ana:
        key["learned"] = ana["learning"]["learned"]
    if ana:
        key["val_acc_final"] = ana.get("val_acc_final")
        key["val_loss_final"] = ana.get("val_loss_final")
        key["separable_fraction_final"] = ana.get("separable_fraction_final")
        key["separable"] = (ana.get("separable_fraction_final") or 0) >= 0.5
        key["etf_deviation_final"] = ana.get("etf_deviation_final")
        key["direct_alpha_sign_agrees"] = ana.get("direct", {}).get("alpha_sign_agrees")
    for H in ("I", "L"):
        if H in est:
            for k in ("r_alpha", "r_beta", "r_gamma"):
                key[f"{k}_{H}"] = est[H][k]
                if f"{k}_ci" in est[H]:
                    key[f"{k}_{H}_ci"] = est[H][f"{k}_ci"]
            if "verdict" in est[H]:
                key[f"verdict_tail_{H}"] = est[H]["verdict"]
                key[f"r_gamma_below_1_{H}"] = est[H].get("r_gamma_below_1")
        mn = ana.get("margin_noise", {}).get(H) if ana else None
        if H == "I" and ana and ana.get("margin_noise", {}).get("level"):
            lv = ana["margin_noise"]["level"]
            key["margin_noise_ratio_final"] = lv["median"]
            key["margin_noise_ratio_final_ci"] = lv["ci"]
            key["margin_noise_threshold"] = lv["threshold"]
            key["verdict_margin_noise_level"] = lv["verdict"]
        if mn:
            key[f"margin_noise_slope_{H}"] = mn["slope"]
            key[f"margin_noise_slope_{H}_ci"] = mn["slope_ci"]
            key[f"verdict_margin_noise_{H}"] = mn["verdict"]
    if sim:
        for H in ("I", "L"):
            key[f"rd_late_{H}"] = sim["rd_late"][H]
    return key


def run_pipeline(
    run_dir: Path,
    *,
    experiment: str,
    config: Any,
    train: Callable[[Path], None],
    cfg: PipelineConfig,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) train → estimate → simulate → analyse in ``run_dir``.

    Args:
        run_dir: the run directory (created).
        experiment: experiment name, stored in the summary.
        config: the experiment's config (a dataclass or dict; stored as JSON).
        train: ``train(train_dir)`` produces (or resumes) the run store in ``train_dir``;
            it is skipped once the summary marks it done.
        cfg: options of the later stages.
        log: progress messages.

    Returns:
        The summary dict (as written to ``summary.json``).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = load_summary(run_dir, broken="warn")
    summary.setdefault("experiment", experiment)
    summary["config"] = jsonable(config)
    summary["pipeline"] = jsonable(cfg)
    summary.setdefault("stages", {})
    write_json_atomic(run_dir / SUMMARY, summary)
    train_dir = run_dir / "train"

    if _stage_done(run_dir, summary, "train", ["train"]):
        log("train: done (skipped)")
    else:
        t = time.perf_counter()
        train(train_dir)
        _mark(run_dir, summary, "train", ["train"], time.perf_counter() - t)
        log(f"train: {time.perf_counter() - t:.1f} s")

    ds = None
    rec = None

    def record():
        nonlocal ds, rec
        if rec is None:
            ds = open_record(train_dir)
            rec = _record_arrays(ds, cfg.classes)
        return rec

    # a stage that runs makes every later stage stale: they read its output
    if _stage_done(run_dir, summary, "estimate", ["estimates.npz"]):
        est = load_npz(run_dir / "estimates.npz")
        stale = False
    else:
        stale = True
        t = time.perf_counter()
        est, numbers = _stage_estimate(record(), cfg)
        names = ds.attrs.get("class_names") if ds is not None else None
        if names is not None and len(names) == est["xbar"].shape[1]:
            summary["class_names"] = [str(n) for n in names]
        save_npz_atomic(run_dir / "estimates.npz", **est)
        summary["estimate"] = numbers
        _mark(run_dir, summary, "estimate", ["estimates.npz"], time.perf_counter() - t)
        log(f"estimate: {time.perf_counter() - t:.1f} s")

    if stale or not _stage_done(run_dir, summary, "simulate", ["simulate.npz"]):
        t = time.perf_counter()
        arrays, numbers = _stage_simulate(est, cfg)
        save_npz_atomic(run_dir / "simulate.npz", **arrays)
        summary["simulate"] = numbers
        _mark(run_dir, summary, "simulate", ["simulate.npz"], time.perf_counter() - t)
        log(f"simulate: {time.perf_counter() - t:.1f} s")

    if stale or not _stage_done(run_dir, summary, "analyse", ["analysis.npz"]):
        t = time.perf_counter()
        rec = record()
        arrays, numbers = _stage_analyse(ds, rec, est, cfg)
        save_npz_atomic(run_dir / "analysis.npz", **arrays)
        summary["analyse"] = numbers
        _mark(run_dir, summary, "analyse", ["analysis.npz"], time.perf_counter() - t)
        log(f"analyse: {time.perf_counter() - t:.1f} s")

    summary["key"] = key_numbers(summary)
    summary["notes"] = verdict_notes(summary)
    write_json_atomic(run_dir / SUMMARY, summary)
    return summary


def verdict_notes(summary: dict) -> list[str]:
    """Plain-language notes on the separation verdicts of a run: each verdict with its
    interval, and where the tail-index and margin-to-noise verdicts disagree, which one
    the genuine separability (LP on the trained probes) supports."""
    est = summary.get("estimate", {})
    ana = summary.get("analyse", {})
    mn_all = ana.get("margin_noise", {})
    frac = ana.get("separable_fraction_final")
    notes: list[str] = []
    learning = ana.get("learning", {})
    if learning and not learning.get("learned", True):
        notes.append(
            f"WARNING: this run did not learn ({learning['why']}): the separation verdicts "
            "and tail indices below describe networks near their initialisation and are "
            "not meaningful. Train longer (more --steps) or use a larger --scale."
        )
    for H in ("I", "L"):
        e, mn = est.get(H, {}), mn_all.get(H)
        if "verdict" not in e:
            continue
        lo, hi = e["r_gamma_ci"]
        text = (
            f"{H}-model: r̂_γ = {e['r_gamma']:.3g}, 95 % interval [{lo:.3g}, {hi:.3g}] "
            f"(bootstrap over trials; {e.get('r_gamma_below_1', float('nan')):.0%} of "
            f'resamples below 1): tail-index verdict "{e["verdict"]}".'
        )
        if not e.get("r_gamma_identifiable", True):
            text += " The fit's own interval reaches its search bound: s is not identified."
        lv = mn_all.get("level")
        if H == "I" and lv:
            lo_, hi_ = lv["ci"]
            notes.append(
                f"Measured margin-to-noise ratio at the end (smallest class-mean gap over the "
                f"within-class sd, median of trials): {lv['median']:.3g} [{lo_:.3g}, {hi_:.3g}] "
                f"against ρ* = {lv['threshold']:.3g} (Gaussian clouds of "
                f"{lv.get('n_per_class', '?')} probes per class separate half the time): "
                f'finite-time verdict "{lv["verdict"]}"; genuinely '
                f"{(frac or 0):.0%} of the trials are separable."
            )
        if mn and not np.isfinite(mn["slope"]):
            text += " Margin-to-noise ratio: too few checkpoints in the window to measure."
        elif mn:
            slo, shi = mn["slope_ci"]
            text += (
                f" Margin-to-noise ratio ρ(t) grows like t^{mn['slope']:.3g} "
                f'[{slo:.3g}, {shi:.3g}]: verdict "{mn["verdict"]}".'
            )
            if mn["verdict"] != e["verdict"] and frac is not None:
                text += (
                    f" The two verdicts disagree; genuinely, {frac:.0%} of the trials are "
                    "separable at the end of training."
                )
        notes.append(text)
    return notes


# ---------------------------------------------------------------- training specs


@dataclass(frozen=True)
class TrainSpec:
    """What to train for one run: data, ensemble size, steps, recording.

    Attributes:
        data: dataset name for `lesde.data.load` ("geomnist", "digits", "cifar10").
        data_options: keyword options of the loader (counts per class, classes, root).
        n_trials: independent networks (paper: 100).
        n_steps: SGD steps per trial, batch size 1 (paper: 10⁵ on GeoMNIST).
        n_checkpoints: probe/validation checkpoints, linearly spaced including 0.
        probe_per_class: probe samples per class from the training set (and as many
            from the validation set).
        lr: SGD learning rate (paper: 0.005).
        p_err: label-corruption ratio of the training labels (docs/math.md §7).
        n_le_steps: steps at which the direct local elasticity is measured (`le_steps_for`).
        seed: root seed.
    """

    data: str
    data_options: dict = dataclasses.field(default_factory=dict)
    n_trials: int = 32
    n_steps: int = 4000
    n_checkpoints: int = 41
    probe_per_class: int = 20
    lr: float = 0.005
    p_err: float = 0.0
    n_le_steps: int = 12
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_trials", "n_steps", "n_checkpoints", "probe_per_class"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        if not 0.0 <= self.p_err <= 1.0:
            raise ValueError(f"`p_err` must be in [0, 1], got {self.p_err!r}")


def le_steps_for(n_steps: int, n: int) -> tuple[int, ...]:
    """Steps for the direct local-elasticity measurement: ``n // 2`` log-spaced in the
    first 10% of training (where the dynamics change fastest) and the rest evenly
    spaced over the later 90% (where the sign comparison with the inversion is made)."""
    if n <= 0:
        return ()
    early = np.geomspace(1, max(1, n_steps // 10), n // 2) if n // 2 else np.array([])
    late = np.linspace(n_steps / 10, n_steps, n - n // 2 + 1)[1:]
    steps = np.concatenate([early, late]).round().astype(int).clip(1, n_steps)
    return tuple(sorted({int(v) for v in steps}))


def make_train_fn(spec: TrainSpec, *, progress: bool = True) -> Callable[[Path], None]:
    """A ``train(train_dir)`` callable that trains ``spec`` with `lesde.train.run_training`.

    `run_training` resumes an unfinished run directory from its last complete chunk and
    returns a complete one as is, so a killed ``lesde run`` continues where it stopped.
    """

    def train(train_dir: Path) -> None:
        from lesde.train import TrainConfig, run_training

        tcfg = TrainConfig(
            n_trials=spec.n_trials,
            n_steps=spec.n_steps,
            lr=spec.lr,
            seed=spec.seed,
            n_checkpoints=spec.n_checkpoints,
            schedule="linear",  # even spacing: Ê(t) windows and ETF curves on a uniform grid
            probe_per_class=spec.probe_per_class,
            le_steps=le_steps_for(spec.n_steps, spec.n_le_steps),
            le_model="L",  # compared with the L-model inversion
            p_err=spec.p_err,
        )
        bar = None
        if progress:
            from tqdm import tqdm

            done = 0  # steps already in the store when resuming
            meta = Path(train_dir) / "meta.json"
            if meta.exists():
                done = int(json.loads(meta.read_text()).get("steps_done", 0))
            bar = tqdm(
                total=spec.n_steps * spec.n_trials, initial=done * spec.n_trials,
                unit="trial-step", unit_scale=True,
                desc=f"train {spec.data} ({spec.n_trials} trials)", mininterval=1.0,
            )  # fmt: skip
        try:
            run_training(
                Path(train_dir), tcfg, data=spec.data, data_options=dict(spec.data_options),
                progress=(lambda n: bar.update(n * spec.n_trials)) if bar else None,
            )  # fmt: skip
        finally:
            if bar is not None:
                bar.close()

    return train


def run_single(
    out: Path,
    *,
    experiment: str,
    config: Any,
    spec: TrainSpec | None,
    cfg: PipelineConfig,
    train: Callable[[Path], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """One training run end to end: pipeline, then every figure, then ``report.html``.

    Args:
        out: the run directory.
        experiment: name stored in the summary.
        config: the experiment's config (stored).
        spec: what to train (ignored when ``train`` is given).
        cfg: options of the later stages.
        train: a custom ``train(train_dir)`` (e.g. `synthetic_record`); default from ``spec``.
        log: progress messages.

    Returns:
        The summary.
    """
    from lesde.figures import draw_figures
    from lesde.report import write_report

    if train is None:
        if spec is None:
            raise ValueError("`spec` or `train` must be given")
        train = make_train_fn(spec)
    before = load_summary(out).get("stages")
    after = run_pipeline(out, experiment=experiment, config=config, train=train, cfg=cfg, log=log)
    if before == after["stages"] and (out / "report.html").exists():
        log("figures and report: up to date (skipped)")
        return after
    t = time.perf_counter()
    draw_figures(out)
    path = write_report(out)
    log(f"figures and report: {time.perf_counter() - t:.1f} s -> {path}")
    return load_summary(out)


def crossing(x: Any, y: Any, level: float) -> float | None:
    """First x where y crosses ``level`` (linear interpolation), None if it never does."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float) - level
    for i in range(len(x) - 1):
        if np.isfinite(y[i]) and np.isfinite(y[i + 1]) and y[i] * y[i + 1] <= 0 and y[i] != 0:
            return float(x[i] - y[i] * (x[i + 1] - x[i]) / (y[i + 1] - y[i]))
    return None


def run_points(
    out: Path,
    *,
    experiment: str,
    config: Any,
    parameter: str,
    points: list[tuple[float, TrainSpec]],
    cfg: PipelineConfig,
    n_classes: int = 3,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Several training runs that differ in one parameter (p_err, n per class).

    Each point is a complete run directory ``out/points/<parameter>=<value>``; the
    parent's ``summary.json`` lists them, and is rewritten after every point, so an
    interrupted sweep resumes at the first incomplete point.

    Returns:
        The parent summary, with ``key`` holding where validation accuracy falls below
        the midpoint between 1 and chance (1/K) and where r̂_γ (L-model) crosses 1.
    """
    from lesde.figures import draw_figures
    from lesde.report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = load_summary(out)
    summary.update(
        experiment=experiment,
        config=jsonable(config),
        pipeline=jsonable(cfg),
        parameter=parameter,
        n_classes=n_classes,
        tail_model="L",
    )
    summary["points"] = [
        {"value": float(v), "dir": f"points/{parameter}={v:.4g}"} for v, _ in points
    ]
    write_json_atomic(out / SUMMARY, summary)
    for (value, spec), p in zip(points, summary["points"], strict=True):
        log(f"--- {parameter} = {value:.4g}")
        run_pipeline(
            out / p["dir"], experiment=f"{experiment}[{parameter}={value:.4g}]", config=spec,
            train=make_train_fn(spec), cfg=cfg, log=log,
        )  # fmt: skip
    rows = [(float(p["value"]), load_summary(out / p["dir"])) for p in summary["points"]]
    xs = [v for v, _ in rows]
    acc = [s["analyse"]["val_acc_final"] for _, s in rows]
    r_g = {H: [s["estimate"][H]["r_gamma"] for _, s in rows] for H in ("I", "L")}
    key: dict[str, Any] = {}
    if parameter == "p_err":  # where the phase transition of paper Fig. 4 shows
        key["val_acc_transition"] = crossing(xs, acc, 0.5 * (1 + 1 / n_classes))
        key["r_gamma_L_crosses_1_at"] = crossing(xs, r_g["L"], 1.0)
        key["r_gamma_I_crosses_1_at"] = crossing(xs, r_g["I"], 1.0)
        for H in ("I", "L"):
            cis = [s["estimate"][H].get("r_gamma_ci", [np.nan, np.nan]) for _, s in rows]
            mns = [s["analyse"].get("margin_noise", {}).get(H, {}) for _, s in rows]
            # where the interval of r̂_γ first reaches 1, and first lies wholly above it
            key[f"r_gamma_{H}_ci_reaches_1_at"] = next(
                (x for x, c in zip(xs, cis, strict=True) if np.isfinite(c[1]) and c[1] >= 1), None
            )
            key[f"r_gamma_{H}_ci_above_1_at"] = next(
                (x for x, c in zip(xs, cis, strict=True) if np.isfinite(c[0]) and c[0] > 1), None
            )
            lvls = [s["analyse"].get("margin_noise", {}).get("level", {}) for _, s in rows]
            if H == "I":
                key["margin_noise_level_not_separable_at"] = next(
                    (x for x, lv in zip(xs, lvls, strict=True)
                     if lv.get("verdict") == "not separable"), None,
                )  # fmt: skip
            key[f"margin_noise_{H}_not_separable_at"] = next(
                (x for x, m in zip(xs, mns, strict=True) if m.get("verdict") == "not separable"),
                None,
            )
    for i, (v, s) in enumerate(rows):
        key[f"val_acc at {parameter}={v:.3g}"] = acc[i]
        for H in ("L", "I"):
            e = s["estimate"][H]
            key[f"r_gamma_{H} at {parameter}={v:.3g}"] = r_g[H][i]
            if "r_gamma_ci" in e:
                key[f"r_gamma_{H} at {parameter}={v:.3g}_ci"] = e["r_gamma_ci"]
                key[f"verdict_tail_{H} at {parameter}={v:.3g}"] = e["verdict"]
            mn = s["analyse"].get("margin_noise", {}).get(H)
            if mn:
                key[f"verdict_margin_noise_{H} at {parameter}={v:.3g}"] = mn["verdict"]
        key[f"separable_fraction at {parameter}={v:.3g}"] = s["analyse"].get(
            "separable_fraction_final"
        )
        lv = s["analyse"].get("margin_noise", {}).get("level")
        if lv:
            key[f"margin_noise_ratio at {parameter}={v:.3g}"] = lv["median"]
            key[f"margin_noise_ratio at {parameter}={v:.3g}_ci"] = lv["ci"]
            key[f"verdict_margin_noise_level at {parameter}={v:.3g}"] = lv["verdict"]
    summary["key"] = key
    write_json_atomic(out / SUMMARY, summary)
    draw_figures(out)
    write_report(out)
    return summary
