"""Numbers quoted in README.md and docs/results/README.md come from committed summaries.

Every table row and the demo sentence are rebuilt from ``docs/results/*/summary.json``
by ``examples/results_tables.py``; a line that drifted from its summary (or a summary
regenerated without updating the docs) fails here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
RESULTS_README = (ROOT / "docs" / "results" / "README.md").read_text(encoding="utf-8")


def _tables():
    path = ROOT / "examples" / "results_tables.py"
    spec = importlib.util.spec_from_file_location("results_tables", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


rt = _tables()


@pytest.mark.parametrize("line", rt.label_noise_rows() + [rt.geomnist_row()])
def test_forecast_rows_are_quoted_from_the_summaries(line):
    assert line in README
    assert line in RESULTS_README


@pytest.mark.parametrize("line", rt.label_noise_measured_rows() + [rt.geomnist_measured_row()])
def test_measured_rows_are_quoted_from_the_summaries(line):
    assert line in README
    assert line in RESULTS_README


def test_demo_numbers_are_the_committed_demo_run():
    assert rt.demo_sentence() in README


@pytest.mark.parametrize("line", rt.synthetic_rows())
def test_forecast_validation_is_quoted(line):
    assert line in README


def test_tail_check_rates_quoted_in_readme_match():
    s = json.loads((ROOT / "docs/results/tail-check/summary.json").read_text(encoding="utf-8"))
    assert f"{s['power_law_pass_rate']:.1%}".replace("%", " %") in README
    low = [v for k, v in s["relaxation_fail_rate"].items() if k.endswith("noise=0.001")]
    assert min(low) == 1.0  # README: "relaxations fail 100 % at low noise"
    assert "relaxations fail 100 % at low noise" in README
