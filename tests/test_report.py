"""The HTML report is self-contained and every figure loads in a real browser.

Headless Chromium (Debian package ``chromium``; ``make test`` installs it) renders the
file with no network; a script in the report writes ``data-images-loaded="ok/total"``
on ``<body>`` once the images decoded, and ``--dump-dom`` returns the final DOM.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from lesde.experiments import pipeline as pl
from lesde.figures import draw_figures
from lesde.report import write_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    pl.run_pipeline(
        d, experiment="synthetic", config={"note": "<script>alert(1)</script>"},
        cfg=pl.PipelineConfig(n_paths=20, n_boot=10),
        train=lambda p: pl.synthetic_record(p, n_trials=5, n_steps=600, n_checkpoints=13),
        log=lambda m: None,
    )  # fmt: skip
    n_png = sum(1 for p in draw_figures(d) if p.suffix == ".png")
    return d, write_report(d), n_png


def test_report_is_self_contained(report):
    d, path, n_png = report
    text = path.read_text()
    assert text.count("data:image/png;base64,") == n_png
    # nothing fetched from outside the file: no http(s) sources, no linked stylesheets
    assert not re.search(r"""(src|href)=['"](https?:|//|file:)""", text)
    # the config is escaped, not executed
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    for word in ("Key numbers", "Configuration", "Provenance", "RD late, L-model"):
        assert word in text


def _chromium(*args, user_dir):
    if not shutil.which(CHROMIUM):
        pytest.fail("headless Chromium not found: `make test` installs the Debian `chromium`")
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={user_dir}", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def test_every_figure_loads_in_chromium(report, tmp_path):
    d, path, n_png = report
    out = _chromium(
        "--virtual-time-budget=5000", "--dump-dom", path.resolve().as_uri(), user_dir=tmp_path
    )
    m = re.search(r'data-images-loaded="(\d+)/(\d+)"', out.stdout)
    assert m, f"no load marker in the rendered DOM; stderr: {out.stderr[-500:]}"
    loaded, total = int(m.group(1)), int(m.group(2))
    assert total == n_png and loaded == total


def test_screenshot_renders(report, tmp_path):
    d, path, _ = report
    shot = tmp_path / "shot.png"
    _chromium("--window-size=1200,1600", f"--screenshot={shot}", path.resolve().as_uri(),
              user_dir=tmp_path / "u")  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 20_000  # a page with figures, not blank


def test_cli_report(report, tmp_path):
    from lesde.cli import app

    d, _, _ = report
    out = tmp_path / "r.html"
    assert app(["report", str(d), "--out", str(out)]) == 0
    assert out.read_text().count("data:image/png;base64,") >= 6
    assert app(["report", str(tmp_path / "missing")]) == 2


def test_points_table_names_runs_that_did_not_learn_and_shows_no_nan(tmp_path):
    # a parent of two committed points, one marked as not learned: the table says so in
    # its own column and writes NaN as "—", never "nan [nan, nan]"
    import json
    from pathlib import Path

    from lesde.sweep import not_learned, not_learned_note

    src = Path(__file__).resolve().parents[1] / "docs" / "results" / "label-noise-paper"
    points = []
    for i, v in enumerate(("0.1", "0.6667")):
        d = tmp_path / "points" / f"p{i}"
        d.mkdir(parents=True)
        s = json.loads((src / "points" / f"p_err={v}" / "summary.json").read_text())
        if i == 1:
            s["analyse"]["learning"]["learned"] = s["key"]["learned"] = False
            s["key"]["r_gamma_L_ci"] = [float("nan"), float("nan")]
        (d / "summary.json").write_text(json.dumps(s))
        points.append({"value": float(v), "dir": f"points/p{i}"})
    (tmp_path / "summary.json").write_text(json.dumps(
        {"experiment": "sweep", "parameter": "p_err", "points": points, "key": {}}))  # fmt: skip
    html = write_report(tmp_path).read_text()
    table = html[html.index("<h2>Points (p_err)</h2>") :]
    table = table[: table.index("</table>")]
    assert table.count("<td class='num bad'>no</td>") == 1
    assert table.count("<td class='num'>yes</td>") == 1
    assert "nan" not in table
    rows = [
        {"dataset": "geomnist", "p_err": 2 / 3, "seed": 0, "learned": False, "key": {}},
        {"dataset": "geomnist", "p_err": 0.1, "seed": 0, "learned": True, "key": {}},
    ]
    assert not_learned(rows) == ["geomnist p_err=0.667 seed 0"]
    assert not_learned_note(rows).startswith("WARNING: 1 of 2 runs did not learn (geomnist")
