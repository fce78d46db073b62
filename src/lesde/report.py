"""One self-contained HTML report per run: figures embedded, key numbers, config, provenance.

The file needs no network and no other file: figures are base64 PNGs in ``data:`` URIs,
styles are inline. A small script marks ``<body data-images-loaded="N/M">`` once the
images have decoded, which the tests read from headless Chromium.
"""

from __future__ import annotations

import base64
import html
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from lesde.rundir import load_summary

__all__ = ["write_report", "provenance"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.6em} table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.92em}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1.2em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#555} pre{background:#f7f7f7;padding:.8em;overflow:auto;
font-size:.82em} .ok{color:#186a1d} .bad{color:#a11} .muted{color:#777;font-size:.9em}
"""

_SCRIPT = """
(function(){
  function check(){
    var imgs=document.images, ok=0;
    for(var i=0;i<imgs.length;i++){ if(imgs[i].complete && imgs[i].naturalWidth>0) ok++; }
    document.body.setAttribute('data-images-loaded', ok+'/'+imgs.length);
  }
  window.addEventListener('load', check);
  check();
})();
"""

# key -> (label, meaning)
_KEY_LABELS: dict[str, tuple[str, str]] = {
    "learned": (
        "the networks learned",
        "accuracy above chance and loss fell; else: ignore verdicts",
    ),
    "val_acc_final": ("validation accuracy (final)", "mean over trials"),
    "val_loss_final": ("validation loss (final)", "mean over trials"),
    "separable_fraction_final": ("separable trials (final)", "train-probe logits, LP"),
    "separable": ("separability verdict", "majority of trials separable"),
    "etf_deviation_final": ("ETF deviation (final)", "median over trials; 0 = simplex"),
    "r_alpha_I": ("r̂_α (I-model)", "tail index of Â (fit), 95 % bootstrap interval"),
    "r_beta_I": ("r̂_β (I-model)", "tail index of B̂ (fit), 95 % bootstrap interval"),
    "r_gamma_I": ("r̂_γ (I-model)", "tail index of Â − B̂; < 1 predicts separation"),
    "r_alpha_L": ("r̂_α (L-model)", "tail index of Â (fit), 95 % bootstrap interval"),
    "r_beta_L": ("r̂_β (L-model)", "tail index of B̂ (fit), 95 % bootstrap interval"),
    "r_gamma_L": ("r̂_γ (L-model)", "tail index of Â − B̂; < 1 predicts separation"),
    "verdict_tail_I": (
        "tail-index verdict (I-model)",
        "prediction: r̂_γ < / > / ≈ 1, or withheld when the power law does not fit or Σ̂ vanishes",
    ),
    "verdict_tail_L": (
        "tail-index verdict (L-model)",
        "prediction: r̂_γ < / > / ≈ 1, or withheld when the power law does not fit or Σ̂ vanishes",
    ),
    "forecast_fit_fraction": ("forecast: fraction fitted", "f: fit on t ≤ f·T, forecast the rest"),
    "forecast_rd_L": ("forecast RD (L-model)", "prediction: class means after the cut"),
    "forecast_rd_persistence_L": ("persistence RD", "baseline: class means held at the cut"),
    "forecast_skill_L": ("forecast skill (L-model)", "1 − RD / RD persistence; > 0 beats it"),
    "forecast_sep_predicted_L": ("predicted separable trials", "prediction: LE-SDE clouds at T"),
    "r_gamma_below_1_I": ("share of resamples r̂_γ < 1 (I)", "bootstrap over trials"),
    "r_gamma_below_1_L": ("share of resamples r̂_γ < 1 (L)", "bootstrap over trials"),
    "margin_noise_slope_I": (
        "margin-to-noise exponent (I)",
        "measurement: d log ρ / d log t on the tail window (no verdict)",
    ),
    "margin_noise_slope_L": (
        "margin-to-noise exponent (L)",
        "measurement: d log ρ / d log t on the tail window (no verdict)",
    ),
    "margin_noise_ratio_final": ("gap / sd at the end", "measurement: class-mean gap / sd, median"),
    "margin_noise_threshold": ("ρ*", "ratio at which Gaussian clouds separate half the time"),
    "verdict_margin_noise_level": ("finite-time reading", "measurement: ratio above / below ρ*"),
    "rd_late_I": ("RD late, I-model", "in-sample fit: last quarter of training"),
    "rd_late_L": ("RD late, L-model", "in-sample fit: last quarter of training"),
    "direct_alpha_sign_agrees": ("direct α̂ sign = inverted", "step-level vs L-inversion"),
    "val_acc_transition": ("p_err where accuracy falls", "crosses (1 + 1/K)/2, interpolated"),
    "r_gamma_L_crosses_1_at": ("p_err where r̂_γ crosses 1", "L-model, interpolated"),
    "r_gamma_I_crosses_1_at": ("p_err where r̂_γ crosses 1", "I-model, interpolated"),
}


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return "—"
    return html.escape(str(v))


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(run_dir: Path) -> dict[str, Any]:
    """Versions, platform, git revision, and the trainer's ``meta.json`` when present."""
    import numpy as np

    import lesde

    prov: dict[str, Any] = {
        "lesde": lesde.__version__,
        "git_revision": _git_revision(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "report_written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    meta = Path(run_dir) / "train" / "meta.json"
    if meta.exists():
        try:
            prov["trainer_meta"] = json.loads(meta.read_text())
        except json.JSONDecodeError:
            prov["trainer_meta"] = "unreadable"
    return prov


def _with_ci(v: Any, ci: Any) -> str:
    """A value and its interval: "0.93 [0.85, 1.02]"."""
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return f"{_fmt(v)} [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    return _fmt(v)


_VERDICT_CLASS = {"separable": "ok", "not separable": "bad", "undetermined": "muted",
                  "power law does not fit": "muted", "not applicable": "muted"}  # fmt: skip


def _headline(summary: dict) -> str:
    """What was measured, then what the fitted LE-SDE predicts (`lesde.experiments.headline`)."""
    rows = summary.get("headline") or []
    if not rows:
        return ""
    body = []
    for r in rows:
        agrees = {True: ("agrees", "ok"), False: ("disagrees", "bad"), None: ("—", "muted")}[
            r["agrees"]
        ]
        body.append(
            f"<tr><td class='muted'>{html.escape(r['kind'])}</td><td>{html.escape(r['what'])}"
            f"</td><td>{html.escape(r['value'])}</td><td class='{agrees[1]}'>{agrees[0]}</td>"
            f"<td class='muted'>{html.escape(r.get('why') or '')}</td></tr>"
        )
    return (
        "<h2>Headline</h2><p class='muted'>A <i>measurement</i> is read off the genuine "
        "record; a <i>prediction</i> is what the LE-SDE fitted on it predicts (the forecast "
        "uses only the start of the run); an <i>in-sample fit</i> drives the model with rates "
        "estimated from the very trajectory it is compared with.</p><table id='headline'>"
        "<tr><th>kind</th><th>what</th><th>value</th><th>vs the measurement</th><th>why</th>"
        f"</tr>{''.join(body)}</table>"
    )


def _forecast_table(summary: dict) -> str:
    """Per fit fraction and H model: the forecast's scores beside the baselines."""
    fc = summary.get("forecast", {})
    if not (fc.get("I") or fc.get("L")):
        return ""
    cols = ("fit_fraction", "t_cut", "rd", "rd_end", "rd_persistence", "rd_trend", "skill",
            "sep_fraction_predicted", "sep_fraction_genuine", "ratio_predicted_end",
            "ratio_genuine_end")  # fmt: skip
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in cols)
    rows = []
    for H in ("I", "L"):
        for r in fc.get(H, []):
            cells = "".join(
                f"<td class='num'>{_with_ci(r.get(c), r.get('rd_ci') if c == 'rd' else None)}"
                "</td>" for c in cols
            )  # fmt: skip
            rows.append(f"<tr><td>{H}</td>{cells}</tr>")
    return (
        "<h2>Out-of-sample forecast</h2><p class='muted'>For each fraction f the estimators "
        "see only t ≤ f·T (class means, t₀, tail fits of Â, B̂ and of the within-class "
        "variance); from the genuine state at the cut the LE-ODE predicts the class means "
        "and the LE-SDE (with the extrapolated Σ̂) every trial's probe cloud to T. RD is "
        "averaged over the grid after the cut (its 95 % band: bootstrap over trials); "
        "persistence holds the class means at the cut; the log-time trend continues their "
        "slope against log(1+t) on the fit window; skill = 1 − RD / RD persistence. "
        "Separable fractions: linear programs on the predicted clouds and on the genuine "
        "probes at T.</p><table><tr><th>H</th>"
        + head
        + "</tr>"
        + "".join(rows)
        + "</table>"
        + "".join(f"<p class='muted'>{html.escape(e)}</p>" for e in fc.get("errors", []))
    )


_NOT_MEANINGFUL = ("r_", "verdict_", "margin_noise_", "separable")


def _key_table(key: dict[str, Any]) -> str:
    rows = []
    unlearned = key.get("learned") is False
    for k, v in key.items():
        if k.endswith("_ci") and k[: -len("_ci")] in key:
            continue  # shown beside its value
        label, meaning = _KEY_LABELS.get(k, (k, ""))
        cls = _VERDICT_CLASS.get(v, "") if isinstance(v, str) else ""
        value = _with_ci(v, key.get(f"{k}_ci"))
        if unlearned and k.startswith(_NOT_MEANINGFUL):
            value += " <span class='bad'>(not meaningful: the run did not learn)</span>"
        if k == "learned" and v is False:
            cls = "bad"
        rows.append(
            f"<tr><td>{html.escape(label)}</td>"
            f"<td class='num {cls}'>{value}</td>"
            f"<td class='muted'>{html.escape(meaning)}</td></tr>"
        )
    return (
        "<table><tr><th>quantity</th><th>value</th><th>meaning</th></tr>"
        + "".join(rows)
        + ("</table>")
    )


def _points_table(run_dir: Path, summary: dict) -> str:
    pts = summary.get("points", [])
    if not pts:
        return ""
    param = summary.get("parameter", "value")
    cols = ["val_acc_final", "separable_fraction_final", "forecast_sep_predicted_L",
            "forecast_skill_L", "r_gamma_L", "verdict_tail_L", "margin_noise_ratio_final",
            "verdict_margin_noise_level", "rd_late_L"]  # fmt: skip
    head = "".join(f"<th>{html.escape(_KEY_LABELS.get(c, (c,))[0])}</th>" for c in cols)
    rows = []
    for p in sorted(pts, key=lambda q: q["value"]):
        key = load_summary(run_dir / p["dir"]).get("key", {})
        cells = "".join(
            f"<td class='num'>{_with_ci(key.get(c), key.get(f'{c}_ci'))}</td>" for c in cols
        )
        label = html.escape(p.get("label", p["dir"]))
        rows.append(
            f"<tr><td class='num'>{_fmt(float(p['value']))}</td><td>{label}</td>{cells}</tr>"
        )
    return (
        f"<h2>Points ({html.escape(param)})</h2><table><tr><th>{html.escape(param)}</th>"
        f"<th>run</th>{head}</tr>{''.join(rows)}</table>"
    )


def _sensitivity_table(summary: dict) -> str:
    """r̂_γ under other tail windows and Savitzky–Golay windows (estimate stage)."""
    est = summary.get("estimate", {})
    blocks = []
    for H in ("I", "L"):
        rows = est.get(H, {}).get("sensitivity")
        if not rows:
            continue
        body = []
        for r in rows:
            if r["method"] == "fit":
                how = f"fit of Â − B̂, last {r['tail_fraction']:.0%} of the run"
            else:
                how = f"log-log slope of γ̂, Savitzky–Golay window {r['sg_window']}"
            verdict = r.get("verdict") or "—"
            body.append(
                f"<tr><td>{html.escape(how)}</td>"
                f"<td class='num'>{_with_ci(r['r_gamma'], r.get('interval'))}</td>"
                f"<td class='{_VERDICT_CLASS.get(verdict, '')}'>{html.escape(verdict)}</td></tr>"
            )
        blocks.append(
            f"<h3>{H}-model</h3><table><tr><th>estimate</th><th>r̂_γ [fit's 95 % interval]</th>"
            f"<th>verdict</th></tr>{''.join(body)}</table>"
        )
    if not blocks:
        return ""
    return (
        "<h2>Sensitivity of r̂_γ to the analyst's choices</h2><p class='muted'>The key "
        "numbers use the pipeline's tail window; here the same record under other windows "
        "and the rate-based estimator. A verdict that changes across rows depends on the "
        "choice, not only on the data.</p>" + "".join(blocks)
    )


def write_report(run_dir: Path | str, *, out: Path | str | None = None) -> Path:
    """Write ``report.html`` for a run (figures must have been drawn; see `draw_figures`).

    Args:
        run_dir: a run directory with ``summary.json``.
        out: output path; default ``run_dir/report.html``.

    Returns:
        The path written.

    Raises:
        FileNotFoundError: when ``run_dir`` holds no ``summary.json``.
    """
    from lesde.figures import figure_list

    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no summary.json)")
    summary = load_summary(run_dir)
    name = summary.get("experiment", run_dir.name)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>lesde report: {html.escape(name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>lesde: {html.escape(name)}</h1>",
        f"<p class='muted'>run directory <code>{html.escape(str(run_dir.resolve()))}</code>. "
        "Imitating deep-learning dynamics with locally elastic SDEs (Zhang, Wang &amp; Su, "
        "NeurIPS 2021).</p>",
    ]
    learning = summary.get("analyse", {}).get("learning", {})
    if learning and learning.get("learned") is False:
        parts.append(
            "<p id='did-not-learn' style='background:#fde8e8;border:2px solid #a11;"
            "padding:.8em;font-weight:600'>This run did not learn: "
            f"{html.escape(learning.get('why', ''))}. Its tail indices, verdicts and "
            "imitation numbers describe networks near their initialisation and are not "
            "meaningful.</p>"
        )
    parts.append(_headline(summary))
    if summary.get("key"):
        parts += ["<h2>Key numbers</h2>", _key_table(summary["key"])]
    parts.append(_forecast_table(summary))
    parts.append(_points_table(run_dir, summary))
    parts.append(_sensitivity_table(summary))
    if summary.get("notes"):
        parts += ["<h2>Notes</h2><ul>"]
        parts += [f"<li>{html.escape(n)}</li>" for n in summary["notes"]]
        parts.append("</ul>")
    figs = figure_list(run_dir)
    if figs:
        parts.append("<h2>Figures</h2>")
    for f in figs:
        b64 = base64.b64encode(Path(f["path"]).read_bytes()).decode("ascii")
        parts.append(
            f"<figure id='{f['name']}'><img alt='{html.escape(f['title'])}' "
            f"src='data:image/png;base64,{b64}'><figcaption>{html.escape(f['title'])} "
            f"(<code>figures/{f['name']}.pdf</code>)</figcaption></figure>"
        )
    detail = {k: summary.get(k) for k in ("estimate", "simulate", "analyse", "forecast")
              if k in summary}  # fmt: skip
    if detail:
        parts += [
            "<h2>All numbers</h2><pre>",
            html.escape(json.dumps(detail, indent=1, allow_nan=True)),
            "</pre>",
        ]
    parts += [
        "<h2>Configuration</h2><pre>",
        html.escape(
            json.dumps(
                {k: summary.get(k) for k in ("config", "pipeline")}, indent=1, allow_nan=True
            )
        ),
        "</pre><h2>Stages</h2><pre>",
        html.escape(json.dumps(summary.get("stages", {}), indent=1)),
        "</pre><h2>Provenance</h2><pre>",
        html.escape(json.dumps(provenance(run_dir), indent=1, default=str)),
        f"</pre><script>{_SCRIPT}</script></body></html>",
    ]
    out = Path(out) if out is not None else run_dir / "report.html"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("".join(parts), encoding="utf-8")
    tmp.replace(out)
    return out
