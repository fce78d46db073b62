"""`lesde run paper`: every experiment of the paper, and one report figure by figure.

The sub-runs go into ``out/<name>`` (each a normal run directory, resumed or reused when
finished): GeoMNIST, the label-noise sweep, the sample-size sweep, the separation
theorems with the collapse demo, scikit-learn digits, and CIFAR-10 with K = 2 and 3 when
a local copy is given. ``out/summary.json`` lists them with their status and holds the
paper's claims with the measured numbers and a one-word outcome each ("reproduced",
"not reproduced", "not run"); `lesde.report_paper` turns it into ``out/report.html``.
A sub-run that is not run (no CIFAR copy) or fails is recorded as such and never hides
the others.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lesde.experiments.summary import RunSummary, point_values, read_summary, write_summary
from lesde.rundir import load_summary

__all__ = ["Config", "PARTS", "plan", "run", "claims", "measure_rate"]


@dataclass(frozen=True)
class Config:
    """Options of `lesde run paper`.

    Attributes:
        scale: "tiny" (tests), "default" (≤ 30 min on 2 cores) or "paper".
        seed: root seed of every experiment.
        cifar_root: a local CIFAR-10 copy (None: ``$LESDE_DATA``; absent: "not run").
    """

    scale: str = "default"
    seed: int = 0
    cifar_root: str | None = None

    def __post_init__(self) -> None:
        from lesde._validation import check_choice, check_seed

        check_choice("scale", self.scale, ("tiny", "default", "paper"))
        check_seed("seed", self.seed)


# name -> (experiment module, config overrides); cifar parts need a local copy
PARTS: dict[str, tuple[str, dict[str, Any]]] = {
    "geomnist": ("geomnist", {}),
    "label-noise": ("label_noise", {}),
    "sample-size": ("sample_size", {}),
    "separation": ("separation", {}),
    "digits": ("digits", {}),
    "cifar-k2": ("cifar", {"classes": (0, 1)}),
    "cifar-k3": ("cifar", {"classes": (0, 1, 2)}),
}


def _module_path(module: str) -> str:
    """The import path of a part's module: the theorem simulations are experiment
    machinery (`lesde.experiments`), the training experiments are studies."""
    return f"lesde.{'experiments' if module == 'separation' else 'studies'}.{module}"


def _config(name: str, scale: str, seed: int, cifar_root: str | None):
    import importlib

    module, extra = PARTS[name]
    mod = importlib.import_module(_module_path(module))
    if module == "separation":
        return mod, (mod.Config.quick(seed=seed) if scale == "tiny" else mod.Config(seed=seed))
    kw: dict[str, Any] = {"scale": scale, "seed": seed, **extra}
    if module == "cifar":
        kw["root"] = cifar_root
    return mod, mod.Config(**kw)


def _trial_steps(module: str, cfg: Any) -> int:
    """Trial-steps a sub-run trains (0 for the separation simulations)."""
    if module == "separation":
        return 0
    from lesde.studies import geomnist, label_noise, sample_size

    if module in ("geomnist", "digits"):
        t, s = geomnist.SCALES[cfg.scale][:2]
        return int(t * s)
    if module == "label_noise":
        t, s = label_noise._POINT_SIZE[cfg.scale]
        return int((cfg.n_trials or t) * (cfg.n_steps or s) * len(cfg.p_errs))
    if module == "sample_size":
        t, s = sample_size._POINT_SIZE[cfg.scale]
        return int(t * s * len(cfg.n_per_class or sample_size._DEFAULT_N[cfg.scale]))
    from lesde.studies import cifar

    t, s = cifar.SCALES[cfg.scale][:2]
    return int(t * s)


def plan(scale: str, seed: int = 0, cifar_root: str | None = None) -> list[dict[str, Any]]:
    """The sub-runs: name, module, config, trial-steps, and why one is not run."""
    import os

    rows = []
    root = cifar_root or os.environ.get("LESDE_DATA")
    for name, (module, _) in PARTS.items():
        mod, cfg = _config(name, scale, seed, cifar_root)
        row = {"name": name, "module": module, "cfg": cfg, "trial_steps": _trial_steps(module, cfg)}
        if module == "cifar" and not root:
            row["not_run"] = "no local CIFAR-10 copy (pass --cifar-root DIR or set LESDE_DATA)"
        rows.append(row)
    return rows


def measure_rate(seconds: float = 1.0, n_trials: int = 100) -> float:
    """The trainer's trial-steps/s on this machine: `lesde.train.calibrate.measure_rate`
    (the paper's CNN, ``n_trials`` trials, the default engine) repeated for ``seconds``.

    The rate is of the training step; the probe and validation evaluations and the
    recording add ~10 % at one evaluation per 2000 steps and ~70 % at paper-scale
    GeoMNIST's schedule (201 checkpoints of 660 images: 44k trial-steps/s recorded against
    75k for the step alone, measured on 2 cores: ``bench/bench_train.py`` and a timed
    run), which the printed estimate states."""
    from lesde.train.calibrate import measure_rate as step_rate

    step_rate(n_trials=n_trials, steps=2)  # warm-up: builds the compiled step once
    t, rates = time.perf_counter(), []
    while not rates or time.perf_counter() - t < seconds:
        rates.append(step_rate(n_trials=n_trials))
    return float(np.median(rates))


def _run_part(name: str, module: str, cfg: Any, out: str, tiny: bool = False) -> dict[str, Any]:
    """Run (or resume) one sub-run; never raises (a failure is recorded)."""
    import importlib

    mod = importlib.import_module(_module_path(module))
    t = time.perf_counter()
    try:
        if module == "separation":
            from lesde.studies.runner import run_separation

            run_separation(cfg, Path(out) / name, tiny=tiny)
        else:
            mod.run(cfg, Path(out) / name, log=lambda m: None)
    except Exception as err:  # noqa: BLE001 - recorded; the other sub-runs go on
        return {"status": "failed", "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc()[-2000:],
                "seconds": round(time.perf_counter() - t, 1)}  # fmt: skip
    return {"status": "done", "seconds": round(time.perf_counter() - t, 1)}


def run(
    cfg: Config,
    out: Path | str = "runs/paper",
    *,
    ray_address: str | None = None,
    log=print,
) -> dict[str, Any]:
    """Run (or resume) every sub-run, then the claims, the summary and the report.

    Args:
        cfg: the `Config` (scale, seed, CIFAR-10 copy).
        out: the directory of the whole run.
        ray_address: run the sub-runs as Ray tasks on this cluster ("auto" or an address).
        log: progress messages.

    Returns:
        The summary.
    """
    from lesde._progress import progress_bar
    from lesde.report_paper import write_paper_report

    scale, seed = cfg.scale, cfg.seed
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = plan(scale, seed, cfg.cifar_root)
    todo = [p for p in parts if "not_run" not in p]
    total = sum(p["trial_steps"] for p in todo)
    rate = measure_rate(0.5 if scale == "tiny" else 2.0)
    minutes = total / rate / 60
    log(f"lesde run paper (scale {scale}): {len(todo)} sub-runs, {total:,} trial-steps; at "
        f"{rate:,.0f} trial-steps/s (measured now, training step only) about "
        f"{math.ceil(minutes)} min of training, plus the probe and validation evaluations "
        "and the recording (up to ~70 % more at the paper's schedules here), the separation "
        "simulations and the stages")  # fmt: skip
    summary = dict(load_summary(out, broken="warn"))
    summary.update(experiment="paper", config={"scale": scale, "seed": seed},
                   estimate={"trial_steps": total, "rate": rate, "minutes": minutes})  # fmt: skip
    status: dict[str, Any] = dict(summary.get("parts", {}))
    for p in parts:
        if "not_run" in p:
            status[p["name"]] = {"status": "not run", "why": p["not_run"]}
    if ray_address is None:
        # a bar in a terminal; in a log file a line per sub-run (`LineProgress`)
        bar = progress_bar(max(total, 1), unit="trial-step", unit_scale=True, desc="paper",
                           every=0)  # fmt: skip
        for p in todo:
            bar.set_postfix_str(p["name"])
            status[p["name"]] = _run_part(p["name"], p["module"], p["cfg"], str(out),
                                          scale == "tiny")  # fmt: skip
            bar.update(p["trial_steps"])
            summary["parts"] = status
            write_summary(out, summary)  # incrementally
        bar.close()
    else:
        import ray

        if not ray.is_initialized():
            ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
        task = ray.remote(num_cpus=1)(_run_part)
        refs = {p["name"]: task.remote(p["name"], p["module"], p["cfg"], str(out.resolve()),
                                       scale == "tiny") for p in todo}  # fmt: skip
        for name, ref in refs.items():
            status[name] = ray.get(ref)
    summary["parts"] = status
    _draw_fig2(out, seed)
    summary["claims"] = claims(out, status)
    final = write_summary(out, summary)
    write_paper_report(out, summary=final)
    for c in summary["claims"]:
        log(f"  {c['outcome']:>15s}: {c['claim']}")
    return final


def _draw_fig2(out: Path, seed: int) -> None:
    """Paper Fig. 2: GeoMNIST samples of each class (drawn once)."""
    path = out / "figures" / "fig2_geomnist.png"
    if path.exists():
        return
    import matplotlib.pyplot as plt

    from lesde.data import load
    from lesde.plots.data import plot_samples

    data = load("geomnist", n_train=8, n_val=0, seed=seed)
    ax = plot_samples(data.x_train, data.y_train, data.class_names, n_per_class=8,
                      title="GeoMNIST")  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    ax.figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(ax.figure)


# ------------------------------------------------------------------ the paper's claims
def _sub(out: Path, name: str, status: dict) -> RunSummary | None:
    if status.get(name, {}).get("status") != "done":
        return None
    return read_summary(out / name)


def _why_not(name: str, status: dict) -> str:
    s = status.get(name, {})
    return s.get("why") or s.get("error") or f"the {name} sub-run did not finish"


def claims(out: Path, status: dict) -> list[dict[str, Any]]:
    """Each stated claim of the paper with the measured numbers and an outcome."""
    out = Path(out)
    rows: list[dict[str, Any]] = []

    def add(claim: str, source: str, fn) -> None:
        s = _sub(out, source, status)
        if s is None:
            rows.append({"claim": claim, "source": source, "outcome": "not run",
                         "numbers": _why_not(source, status)})  # fmt: skip
            return
        if s.key.learned is False:
            rows.append({"claim": claim, "source": source, "outcome": "not run",
                         "numbers": f"the {source} sub-run did not learn (its verdicts are "
                         "not meaningful; use a larger --scale)"})  # fmt: skip
            return
        ok, numbers = fn(s)
        rows.append({"claim": claim, "source": source, "numbers": numbers,
                     "outcome": "reproduced" if ok else "not reproduced"})  # fmt: skip

    def sep_part(part: str, thr_low, thr_high, name):
        def fn(s):
            table = _separation_table(out)
            curve = table[part]["curves"][-1]
            xs, fr = table[part]["x"], curve["fraction"]
            below = [f for x, f in zip(xs, fr, strict=True) if x < thr_low]
            above = [f for x, f in zip(xs, fr, strict=True) if x > thr_high]
            lo_side, hi_side = (below, above) if part == "a" else (above, below)
            ok = bool(lo_side) and bool(hi_side) and max(lo_side) <= 0.1 and min(hi_side) >= 0.9
            return ok, (
                f"separable fraction at T = {curve['horizon']:g}: "
                + ", ".join(f"{name}={x:g}: {f:.2f}" for x, f in zip(xs, fr, strict=True))
            )

        return fn

    add("Theorem 2.1: constant α, β separate iff α > β", "separation",
        sep_part("a", 0.0, 0.004, "α−β"))  # fmt: skip
    add("Theorem 3.1: γ ~ t^(−s) separates iff s < 1", "separation",
        sep_part("b", 0.96, 1.04, "s"))  # fmt: skip

    def collapse(s):
        key = s.key.extra.get("collapse", "")
        import re

        m = re.search(r"\(LE-ODE\) ([0-9.e+-]+) -> ([0-9.e+-]+)", key)
        ok = bool(m) and float(m.group(2)) < 1e-3 * float(m.group(1))
        return ok, key

    add("Proposition 3.4: under the L-model the class means collapse to a simplex ETF",
        "separation", collapse)  # fmt: skip

    def imitates(s):
        rd = s.key.rd_late or {}
        i, lm = rd.get("I"), rd.get("L")
        ok = i is not None and lm is not None and lm < i
        return ok, f"RD in late training: L-model {lm:.3g}, I-model {i:.3g}"

    add("The L-model imitates the genuine dynamics better than the I-model (Fig. 5)",
        "geomnist", imitates)  # fmt: skip

    def fails(s):
        # scored by the model's prediction (the forecast's separable fraction at T, L-model,
        # fitted on the start of each run), shown beside the measured fact (the LP
        # separability of the trained probes); reproduced only when both follow the claim
        measured = point_values(s.key.extra, "separable_fraction")
        predicted = point_values(s.key.extra, "sep_fraction_predicted_L")

        def follows(pts: dict) -> bool:
            hi = [v for p, v in pts.items() if p >= 2 / 3 - 1e-3 and v is not None]
            lo = [v for p, v in pts.items() if p <= 0.3 and v is not None]
            return bool(hi and lo) and all(v < 0.5 for v in hi) and all(v >= 0.5 for v in lo)

        ok_m, ok_p = follows(measured), follows(predicted)
        text = "separable trials by p_err, measured (predicted by the LE-SDE forecast): " + (
            ", ".join(
                f"{p:.2g}: {v:.0%} ({predicted.get(p, float('nan')):.0%})"
                for p, v in sorted(measured.items())
                if v is not None
            )  # fmt: skip
        )
        if ok_m and not ok_p:
            text += "; the measurement follows the claim, the model's prediction does not"
        elif ok_p and not ok_m:
            text += "; the model's prediction follows the claim, the measurement does not"
        return ok_m and ok_p, text

    add("Separation fails for p_err ≥ 2/3 and holds for small p_err (Fig. 4)", "label-noise",
        fails)  # fmt: skip

    def crosses(s):
        at = s.key.extra.get("r_gamma_L_ci_reaches_1_at")
        cis = point_values(s.key.extra, "r_gamma_L", suffix="_ci")
        ok = at is not None and 0.5 <= at <= 0.7
        where = "never" if at is None else f"first at p_err = {at:.2g}"
        return ok, (f"the 95 % interval of r̂_γ (L-model) reaches 1 {where}; intervals: "
                    + ", ".join(f"{p:.2g}: [{c[0]:.2g}, {c[1]:.2g}]"
                                for p, c in sorted(cis.items())))  # fmt: skip

    add("r̂_γ crosses 1 near p_err = 0.6 (Fig. 4c)", "label-noise", crosses)
    return rows


def _separation_table(out: Path) -> dict:
    import json

    return json.loads((out / "separation" / "separation.json").read_text())
