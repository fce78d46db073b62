"""The README's and docs/results' tables of committed results, built from their summaries.

    python examples/results_tables.py          # prints the markdown to paste

`tests/test_results.py` rebuilds every line from the committed ``summary.json`` files
and fails when README.md or docs/results/README.md no longer contains it: a quoted
number cannot drift from the result it quotes.
"""

from __future__ import annotations

import json
from pathlib import Path

from lesde.experiments.summary import ForecastRow, RunSummary, read_summary

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"

FORECAST_HEADER = (
    "| p_err | separable trials (measured) | forecast skill L, f = 0.2 / 0.5 "
    "| skill I, f = 0.2 / 0.5 | separable at T, L forecast from f = 0.5 (measured) "
    "| tail verdict (L) | fit check failed |\n|---|---|---|---|---|---|---|"
)


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _p_err(name: str) -> str:
    v = float(name.split("=")[1])
    return "2/3" if abs(v - 2 / 3) < 1e-3 else f"{v:g}"


def _skill(rows: list[ForecastRow], f: float) -> str:
    r = _row(rows, f)
    return f"{r.skill:+.2f}" if r else "–"


def _row(r_f: list[ForecastRow], f: float) -> ForecastRow | None:
    return next((r for r in r_f if abs(r.fit_fraction - f) < 1e-9), None)


def forecast_row(label: str, s: RunSummary) -> str:
    """One row of the forecast table from a run's summary."""
    L, I_ = s.forecast_rows("L"), s.forecast_rows("I")
    half = _row(L, 0.5)
    sep = (f"{half.sep_fraction_predicted:.0%} ({half.sep_fraction_genuine:.0%})"
           if half else "–")  # fmt: skip
    e = s.numbers["estimate"].get("L", {})
    failed = ", ".join(e.get("fit_check", {}).get("failed", [])) or "none"
    if e.get("verdict") == "not applicable":
        failed = "premise: " + e.get("verdict_why", "")
    m = s.key.models["L"]
    return (
        f"| {label} | {s.key.separable_fraction_final:.0%} "
        f"| {_skill(L, 0.2)} / {_skill(L, 0.5)} | {_skill(I_, 0.2)} / {_skill(I_, 0.5)} "
        f"| {sep} | {m.tail_verdict or '–'} (r̂_γ {m.r_gamma:.2f}) "
        f"| {failed} |"
    )


def _sweep_points() -> list[tuple[str, RunSummary]]:
    """(p_err label, summary) of every point of the label-noise sweep, by p_err."""
    parent = read_summary(RESULTS / "label-noise-paper")
    return [(_p_err(f"p_err={v}"), s)
            for v, s in parent.point_summaries(RESULTS / "label-noise-paper")]  # fmt: skip


def label_noise_rows() -> list[str]:
    """The forecast table of the label-noise sweep at the paper's length, one row per p_err."""
    return [forecast_row(label, s) for label, s in _sweep_points()]


def geomnist_row() -> str:
    return forecast_row("GeoMNIST (paper scale)", read_summary(RESULTS / "geomnist-paper"))


MEASURED_HEADER = (
    "| p_err | val. acc. | separable trials | r̂_γ (L) [95 %] | gap/sd at the end [95 %] "
    "(ρ* ≈ 3.7; a measurement) | in-sample RD late (I / L) | LE-SDE with Σ̂, separable at "
    "T (L, in sample) |\n|---|---|---|---|---|---|---|"
)


def measured_row(label: str, s: RunSummary) -> str:
    """One row of the measured (and in-sample) numbers of a run."""
    k, m = s.key, s.key.models["L"]
    lo, hi = m.r_gamma_ci
    mlo, mhi = k.level["ci"]
    sde = s.numbers["simulate"].get("sde", {}).get("L", {})
    sep = f"{sde['sep_end_sim']:.0%}" if "sep_end_sim" in sde else "–"
    return (
        f"| {label} | {k.val_acc_final:.3f} | {k.separable_fraction_final:.0%} "
        f"| {m.r_gamma:.2f} [{lo:.2f}, {hi:.2f}] "
        f"| {k.level['ratio']:.2f} [{mlo:.2f}, {mhi:.2f}] "
        f"| {k.rd_late['I']:.2f} / {k.rd_late['L']:.2f} | {sep} |"
    )


def label_noise_measured_rows() -> list[str]:
    return [measured_row(label, s) for label, s in _sweep_points()]


def geomnist_measured_row() -> str:
    return measured_row("GeoMNIST (paper scale)", read_summary(RESULTS / "geomnist-paper"))


def demo_sentence() -> str:
    """The README's sentence of the demo's key numbers (docs/results/demo/summary.json)."""
    k = read_summary(RESULTS / "demo").key
    lv, fc, m = k.level, k.forecast, k.models["L"]
    ci = lv["ci"]
    return (
        f"validation accuracy {k.val_acc_final:.3f}, "
        f"{k.separable_fraction_final:.0%} of trials separable, gap/sd at the end "
        f"{lv['ratio']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] against "
        f"ρ* = {lv['threshold']:.2f}; the L-model forecast from the first "
        f"{fc.fit_fraction:.0%} has RD {fc.rd:.3f} against "
        f"persistence {fc.rd_persistence:.3f} (skill "
        f"{fc.skill:+.2f}) and predicts {fc.sep_fraction_predicted:.0%} "
        f"separable; r̂_γ {m.r_gamma:.2f} [{m.r_gamma_ci[0]:.2f}, "
        f'{m.r_gamma_ci[1]:.2f}] (L), tail verdict "{m.tail_verdict}"; RD in '
        f"late training {k.rd_late['I']:.2f} (I-model) and {k.rd_late['L']:.2f} (L-model)"
    )


def _bench() -> tuple[dict[str, dict], dict]:
    """bench_train.py's committed run: ({variant: row}, the derived ratios)."""
    d = _load(RESULTS / "train-bench" / "train.json")
    return {row["variant"]: row for row in d["rows"]}, d["derived"]


def speed_sentence() -> str:
    """The README's training-speed numbers (docs/results/train-bench: bench_train.py)."""
    r, dv = _bench()

    def rate(v: str) -> str:
        return f"{r[v]['trial_steps_per_s']:,.0f}"

    steady = next(v for v in r if v.startswith("cnn, recording, steady state ("))
    return (
        f'the "cnn" backend records at {rate("cnn, recording")} trial-steps/s over a whole '
        f"2000-step run ({rate(steady)} in a long one), "
        f"{dv['new_over_previous_recording']:.2f}× the previous engine "
        f"({rate('cnn (previous engine), recording')}) in the same run; its bare step "
        f"{rate('engine only, 2 thread groups')} trial-steps/s "
        f"({dv['new_over_previous_bare']:.2f}×), so recording costs "
        f"{dv['recording_overhead']:.0%} in a long run with an evaluation every 2000 steps "
        f"and {dv['recording_overhead_paper_schedule']:.0%} at paper-scale GeoMNIST's schedule "
        "(660 images every 500 steps); a plain `nn.Module` + SGD loop "
        f"{rate('plain loop nn.Module+SGD')} steps/s"
    )


def func_sentence() -> str:
    """The README's "func" backend numbers (docs/results/train-bench)."""
    rows, dv = _bench()
    r = {v: row["trial_steps_per_s"] for v, row in rows.items()}

    def rate(prefix: str) -> str:
        return f"{next(v for k, v in r.items() if k.startswith(prefix)):,.0f}"

    return (
        f"the paper's CNN at {rate('func backend (paper CNN: the compiled')} trial-steps/s "
        f'({dv["func_cnn_over_new_cnn"]:.0%} of the "cnn" backend: it runs on the compiled '
        f"step), {rate('func backend (paper CNN, traced graph')} through the traced graph "
        f"({dv['func_traced_over_new_cnn']:.0%}), the same CNN with Tanh for its ReLUs "
        f"(outside the kernel's family) at {rate('func backend (paper CNN with Tanh')}, an "
        f"MLP on 10-class vectors at {rate('func backend, MLP on 10-class vectors')} vs "
        f"{rate('plain loop, MLP on 10-class vectors')} for its plain loop"
    )


def timing_sentence() -> str:
    """The README's measured paper-scale GeoMNIST wall time and the whole-paper estimate."""
    d = _load(RESULTS / "timing" / "summary.json")
    g, p = d["geomnist_paper"], d["paper_scale"]
    return (
        f"`lesde run geomnist --scale paper` ({g['trial_steps']:.0e} trial-steps) took "
        f"{g['wall_seconds'] / 60:.1f} min here, {g['seconds']['train'] / 60:.1f} min of it "
        f"training at {g['train_rate']:,} trial-steps/s with recording (the previous engine: "
        f"{d['previous_engine_geomnist_train_seconds'] / 60:.1f} min); at that rate the "
        f"paper's {p['trial_steps']:.2e} trial-steps without CIFAR-10 are "
        f"{p['train_hours_at_that_rate']:.1f} h of training, {p['train_hours_with_cifar']:.1f} h "
        "with it"
    )


def synthetic_rows() -> list[str]:
    """The forecast validation on the LE particle process (examples/forecast_validation.py)."""
    s = _load(RESULTS / "forecast-synthetic" / "summary.json")
    out = []
    for H in ("L", "I"):
        cells = []
        for r in sorted((r for r in s["rows"] if r["model"] == H), key=lambda r: r["fit_fraction"]):
            k = r["skill"]
            cells.append(f"{k['mean']:+.2f} ± {k['sd']:.2f} (min {k['min']:+.2f}; "
                         f"{r['beats_persistence']}/{r['n_seeds']})")  # fmt: skip
        out.append(f"| {H} | " + " | ".join(cells) + " |")
    return out


def main() -> None:
    print(FORECAST_HEADER)
    for line in label_noise_rows():
        print(line)
    print(geomnist_row())
    print()
    print(MEASURED_HEADER)
    for line in label_noise_measured_rows():
        print(line)
    print(geomnist_measured_row())
    print()
    print(demo_sentence())
    print()
    for line in synthetic_rows():
        print(line)


if __name__ == "__main__":
    main()
