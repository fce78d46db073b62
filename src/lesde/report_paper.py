"""The combined report of `lesde run paper`: organised as the paper is, figure by figure.

For each figure of the paper and each stated claim: our figure, the paper's caption in
our words, the measured numbers (with intervals where the sub-run has them), and a
one-word outcome. Reads only ``summary.json`` files and the sub-runs' figures.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from lesde.experiments.summary import RunSummary, read_summary
from lesde.report import _CSS, _SCRIPT, _fmt, _with_ci, provenance

__all__ = ["write_paper_report", "FIGURES"]

# (section, sub-run, figure file, caption in our words, key numbers to show)
FIGURES: list[tuple[str, str, str, str, tuple[str, ...]]] = [
    ("Fig. 1 (a–d)", "geomnist", "figures/fig1_trajectories.png",
     "Class-mean logits of GeoMNIST during training (3-D view) and their projection on the "
     "direction between the two class means farthest apart: the classes separate.",
     ("val_acc_final", "separable_fraction_final")),
    ("Fig. 2", ".", "figures/fig2_geomnist.png",
     "GeoMNIST: anti-aliased triangles, rectangles and ellipses at random angles and blurs.",
     ()),
    ("Fig. 3 (a–h)", "geomnist", "figures/fig3_estimates.png",
     "Â, B̂ and the rates α̂, β̂ estimated from the genuine dynamics under the I-model "
     "(top) and the L-model (bottom).",
     ("r_gamma_I", "r_gamma_L", "verdict_tail_I", "verdict_tail_L")),
    ("Fig. 4 (a–c)", "label-noise", "figures/fig4_label_noise.png",
     "Label corruption p_err: validation loss and accuracy over training and at the end, "
     "tail indices (with 95 % intervals), the margin-to-noise exponent and the measured "
     "gap/spread ratio against ρ*. The paper puts the phase transition near p_err* = 2/3.",
     ("val_acc_transition", "r_gamma_L_ci_reaches_1_at", "margin_noise_level_not_separable_at")),
    ("Fig. 5 (a–d)", "geomnist", "figures/fig5_simulated.png",
     "The LE-ODE (L-model) driven by the estimated rates against the genuine class means; "
     "the L-model's rates imitate better than the I-model's.",
     ("rd_late_I", "rd_late_L")),
    ("Theorems 2.1 and 3.1", "separation", "separation.png",
     "Fractions of separable LE-SDE runs against α − β (constant rates) and against s in "
     "γ(t) = c(1+t)^(−s); the estimator checked on runs with known s, and the "
     "margin-to-noise exponent at the boundary s = 1.",
     ()),
    ("Proposition 3.4", "separation", "collapse.png",
     "Neural collapse: under the L-model the normalised class means tend to a simplex ETF.",
     ("collapse",)),
    ("Sample size", "sample-size", "figures/sample_size.png",
     "GeoMNIST with several training-set sizes per class.", ()),
    ("Digits", "digits", "figures/fig5_simulated.png",
     "scikit-learn digits (real images, offline): the LE-ODE from the estimates against "
     "the genuine class means.",
     ("val_acc_final", "rd_late_I", "rd_late_L", "verdict_margin_noise_level")),
    ("CIFAR-10, K = 2", "cifar-k2", "figures/fig5_simulated.png",
     "CIFAR-10 with two classes.", ("val_acc_final", "rd_late_I", "rd_late_L")),
    ("CIFAR-10, K = 3", "cifar-k3", "figures/fig5_simulated.png",
     "CIFAR-10 with three classes.", ("val_acc_final", "rd_late_I", "rd_late_L")),
]  # fmt: skip

_OUTCOME = {"reproduced": "ok", "not reproduced": "bad", "not run": "muted"}


def _img(path: Path, alt: str) -> str:
    b64 = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'>"


def write_paper_report(out: Path | str, *, summary: RunSummary | None = None) -> Path:
    """Write ``out/report.html`` from ``out/summary.json`` (or ``summary``, when the caller
    holds it) and the sub-runs."""
    out = Path(out)
    if summary is None:
        summary = read_summary(out)
    parts: dict[str, Any] = summary.other.get("parts", {})
    est = summary.numbers.get("estimate", {})  # the time estimate of the training
    scale = (summary.config or {}).get("scale")
    body = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>lesde: the paper, reproduced</title><style>{_CSS}</style></head><body>",
        "<h1>lesde: the paper, reproduced</h1>",
        "<p class='muted'>Imitating deep-learning dynamics via locally elastic SDEs (Zhang, "
        f"Wang &amp; Su, NeurIPS 2021). Scale <b>{html.escape(str(scale))}</b>; "
        f"{est.get('trial_steps', 0):,} trial-steps of training (estimated "
        f"{est.get('minutes', float('nan')):.1f} min at {est.get('rate', 0):,.0f} "
        "trial-steps/s).</p>",
        "<h2>Claims</h2><table><tr><th>claim</th><th>measured</th><th>outcome</th></tr>",
    ]
    for c in summary.other.get("claims", []):
        cls = _OUTCOME.get(c["outcome"], "")
        body.append(
            f"<tr><td>{html.escape(c['claim'])}</td><td>{html.escape(str(c['numbers']))}</td>"
            f"<td class='{cls}'><b>{html.escape(c['outcome'])}</b></td></tr>"
        )
    body.append("</table><h2>Figures</h2>")
    for section, sub, fig, caption, keys in FIGURES:
        absent = {"status": "not run", "why": "not part of this run"}
        state = {"status": "done"} if sub == "." else parts.get(sub, absent)
        body.append(f"<h3>{html.escape(section)}</h3>")
        path = out / sub / fig
        if state.get("status") != "done" or not path.exists():
            why = state.get("why") or state.get("error") or "its figure was not drawn"
            body.append(f"<p class='muted'><b>not run</b>: {html.escape(str(why))}</p>")
            continue
        body.append(f"<figure>{_img(path, section)}<figcaption>{html.escape(caption)}"
                    "</figcaption></figure>")  # fmt: skip
        key = read_summary(out / sub).key.to_json() if sub != "." else {}
        rows = [
            f"<tr><td>{html.escape(k)}</td>"
            f"<td class='num'>{_with_ci(key[k], key.get(k + '_ci'))}</td></tr>"
            for k in keys
            if k in key
        ]
        if rows:
            body.append("<table>" + "".join(rows) + "</table>")
        if sub != ".":
            link = f"<a href='{html.escape(sub)}/report.html'>its report</a>"
            body.append(f"<p class='muted'>sub-run <code>{html.escape(sub)}/</code> ({link})</p>")
    body.append("<h2>Sub-runs</h2><table><tr><th>sub-run</th><th>status</th><th>seconds</th>"
                "<th>note</th></tr>")  # fmt: skip
    for name, st in parts.items():
        note = st.get("why") or st.get("error") or ""
        body.append(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(st.get('status', ''))}</td>"
            f"<td class='num'>{_fmt(st.get('seconds'))}</td><td>{html.escape(note)}</td></tr>"
        )
    body += [
        "</table><h2>Provenance</h2><pre>",
        html.escape(json.dumps(provenance(out), indent=1, default=str)),
        f"</pre><script>{_SCRIPT}</script></body></html>",
    ]
    path = out / "report.html"
    tmp = path.with_name(".report.html.tmp")
    tmp.write_text("".join(body), encoding="utf-8")
    tmp.replace(path)
    return path
