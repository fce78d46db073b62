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

from lesde.experiments.summary import KEY_LABELS, KeyNumbers, RunSummary, Verdict, read_summary

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


def _headline(rows: tuple[Verdict, ...]) -> str:
    """What was measured, then what the fitted LE-SDE predicts (`lesde.experiments.headline`)."""
    if not rows:
        return ""
    body = []
    for r in rows:
        agrees = {True: ("agrees", "ok"), False: ("disagrees", "bad"), None: ("—", "muted")}[
            r.agrees
        ]
        body.append(
            f"<tr><td class='muted'>{html.escape(r.kind)}</td><td>{html.escape(r.what)}"
            f"</td><td>{html.escape(r.detail)}</td><td class='{agrees[1]}'>{agrees[0]}</td>"
            f"<td class='muted'>{html.escape(r.why)}</td></tr>"
        )
    return (
        "<h2>Headline</h2><p class='muted'>A <i>measurement</i> is read off the genuine "
        "record; a <i>prediction</i> is what the LE-SDE fitted on it predicts (the forecast "
        "uses only the start of the run); an <i>in-sample fit</i> drives the model with rates "
        "estimated from the very trajectory it is compared with.</p><table id='headline'>"
        "<tr><th>kind</th><th>what</th><th>value</th><th>vs the measurement</th><th>why</th>"
        f"</tr>{''.join(body)}</table>"
    )


def _forecast_table(summary: RunSummary) -> str:
    """Per fit fraction and H model: the forecast's scores beside the baselines."""
    fc = summary.numbers.get("forecast", {})
    if not (summary.forecast_rows("I") or summary.forecast_rows("L")):
        return ""
    cols = ("fit_fraction", "t_cut", "rd", "rd_end", "rd_persistence", "rd_trend", "skill",
            "sep_fraction_predicted", "sep_fraction_genuine", "ratio_predicted_end",
            "ratio_genuine_end")  # fmt: skip
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in cols)
    rows = []
    for H in ("I", "L"):
        for row in summary.forecast_rows(H):
            r = row.numbers
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


def _key_table(key: KeyNumbers) -> str:
    rows = []
    unlearned = key.learned is False
    for r in key.rows():
        cls = _VERDICT_CLASS.get(r.value, "") if isinstance(r.value, str) else ""
        value = _with_ci(r.value, list(r.interval) if r.interval else None)
        if unlearned and r.name.startswith(_NOT_MEANINGFUL):
            value += " <span class='bad'>(not meaningful: the run did not learn)</span>"
        if r.name == "learned" and r.value is False:
            cls = "bad"
        rows.append(
            f"<tr><td>{html.escape(r.label)}</td>"
            f"<td class='num {cls}'>{value}</td>"
            f"<td class='muted'>{html.escape(r.meaning)}</td></tr>"
        )
    return (
        "<table><tr><th>quantity</th><th>value</th><th>meaning</th></tr>"
        + "".join(rows)
        + ("</table>")
    )


def _point_cells(s: RunSummary) -> list[tuple[Any, Any]]:
    """A sub-run's (value, interval) in the points table's columns (`_POINT_COLUMNS`)."""
    k, m = s.key, s.key.models.get("L")
    fc, lv = k.forecast, k.level or {}
    return [
        (k.learned, None),
        (k.val_acc_final, None),
        (k.separable_fraction_final, None),
        (fc.sep_fraction_predicted if fc else None, None),
        (fc.skill if fc else None, None),
        (m.r_gamma if m else None, _finite(m.r_gamma_ci) if m else None),
        (m.tail_verdict if m else None, None),
        (lv.get("ratio"), _finite(lv.get("ci"))),
        (lv.get("verdict"), None),
        ((k.rd_late or {}).get("L"), None),
    ]


def _shown(v: Any) -> Any:
    """NaN shown as "—" in the points table (one narrow cell, not "nan")."""
    return None if isinstance(v, float) and v != v else v


def _finite(ci: Any) -> Any:
    """An interval worth showing: both ends finite (else none, not "nan [nan, nan]")."""
    if ci is None or not all(isinstance(v, int | float) and v == v for v in ci):
        return None
    return list(ci)


_POINT_COLUMNS = ("learned", "val_acc_final", "separable_fraction_final",
                  "forecast_sep_predicted_L", "forecast_skill_L", "r_gamma_L", "verdict_tail_L",
                  "margin_noise_ratio_final", "verdict_margin_noise_level",
                  "rd_late_L")  # fmt: skip


def _points_table(run_dir: Path, summary: RunSummary) -> str:
    pts = summary.points
    if not pts:
        return ""
    param = summary.other.get("parameter", "value")
    head = "".join(f"<th>{html.escape(KEY_LABELS.get(c, (c,))[0])}</th>" for c in _POINT_COLUMNS)
    rows = []
    for p in sorted(pts, key=lambda q: q["value"]):
        sub = read_summary(run_dir / p["dir"])
        cells = "".join(
            f"<td class='num{' bad' if v is False else ''}'>{_with_ci(_shown(v), ci)}</td>"
            for v, ci in _point_cells(sub)
        )
        label = html.escape(p.get("label", p["dir"]))
        rows.append(
            f"<tr><td class='num'>{_fmt(float(p['value']))}</td><td>{label}</td>{cells}</tr>"
        )
    return (
        f"<h2>Points ({html.escape(param)})</h2><table><tr><th>{html.escape(param)}</th>"
        f"<th>run</th>{head}</tr>{''.join(rows)}</table>"
    )


def _sensitivity_table(summary: RunSummary) -> str:
    """r̂_γ under other tail windows and Savitzky–Golay windows (estimate stage)."""
    est = summary.numbers.get("estimate", {})
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


def _did_not_learn(summary: RunSummary) -> str:
    learning = summary.numbers.get("analyse", {}).get("learning", {})
    if not (learning and learning.get("learned") is False):
        return ""
    return (
        "<p id='did-not-learn' style='background:#fde8e8;border:2px solid #a11;"
        "padding:.8em;font-weight:600'>This run did not learn: "
        f"{html.escape(learning.get('why', ''))}. Its tail indices, verdicts and "
        "imitation numbers describe networks near their initialisation and are not "
        "meaningful.</p>"
    )


def _caveats(summary: RunSummary) -> str:
    """The premises of the LE-SDE that the record does not meet (before every verdict)."""
    if not summary.caveats:
        return ""
    items = "".join(f"<li>{html.escape(c)}</li>" for c in summary.caveats)
    return (
        "<div id='caveats' style='background:#fff6e0;border:2px solid #b80;padding:.6em'>"
        f"<b>Caveats: every verdict below carries them.</b><ul>{items}</ul></div>"
    )


def _notes(summary: RunSummary) -> str:
    if not summary.notes:
        return ""
    return (
        "<h2>Notes</h2><ul>"
        + "".join(f"<li>{html.escape(n)}</li>" for n in summary.notes)
        + "</ul>"
    )


def _figures(run_dir: Path) -> str:
    """Every figure of the run, embedded as a base64 PNG."""
    from lesde.figures import figure_list

    figs = figure_list(run_dir)
    parts = ["<h2>Figures</h2>"] if figs else []
    for f in figs:
        b64 = base64.b64encode(Path(f["path"]).read_bytes()).decode("ascii")
        parts.append(
            f"<figure id='{f['name']}'><img alt='{html.escape(f['title'])}' "
            f"src='data:image/png;base64,{b64}'><figcaption>{html.escape(f['title'])} "
            f"(<code>figures/{f['name']}.pdf</code>)</figcaption></figure>"
        )
    return "".join(parts)


def _appendix(run_dir: Path, summary: RunSummary) -> str:
    """All numbers, the configuration, the stages and the provenance, as JSON."""

    def block(title: str, obj: Any, **kw: Any) -> str:
        return f"<h2>{title}</h2><pre>{html.escape(json.dumps(obj, indent=1, **kw))}</pre>"

    parts = [block("All numbers", summary.numbers, allow_nan=True)] if summary.numbers else []
    parts += [
        block("Configuration", {"config": summary.config, "pipeline": summary.pipeline},
              allow_nan=True),
        block("Stages", summary.stages),
        block("Provenance", provenance(run_dir), default=str),
    ]  # fmt: skip
    return "".join(parts)


def write_report(
    run_dir: Path | str, *, out: Path | str | None = None, summary: RunSummary | None = None
) -> Path:
    """Write ``report.html`` for a run (figures must have been drawn; see `draw_figures`).

    Args:
        run_dir: a run directory with ``summary.json``.
        out: output path; default ``run_dir/report.html``.
        summary: the run's summary when the caller holds it (default: read it).

    Returns:
        The path written.

    Raises:
        FileNotFoundError: when ``run_dir`` holds no ``summary.json``.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no summary.json)")
    if summary is None:
        summary = read_summary(run_dir)
    name = summary.experiment or run_dir.name
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>lesde report: {html.escape(name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>lesde: {html.escape(name)}</h1>",
        f"<p class='muted'>run directory <code>{html.escape(str(run_dir.resolve()))}</code>. "
        "Imitating deep-learning dynamics with locally elastic SDEs (Zhang, Wang &amp; Su, "
        "NeurIPS 2021).</p>",
        _did_not_learn(summary),
        _caveats(summary),
        _headline(summary.headline),
        "<h2>Key numbers</h2>" + _key_table(summary.key) if summary.key else "",
        _forecast_table(summary),
        _points_table(run_dir, summary),
        _sensitivity_table(summary),
        _notes(summary),
        _figures(run_dir),
        _appendix(run_dir, summary),
        f"<script>{_SCRIPT}</script></body></html>",
    ]
    out = Path(out) if out is not None else run_dir / "report.html"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("".join(parts), encoding="utf-8")
    tmp.replace(out)
    return out
