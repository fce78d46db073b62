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


def test_training_speed_is_quoted_from_the_bench_results():
    # docs/results/train-bench: bench/bench_train.py's table, committed
    assert rt.speed_sentence() in README
    assert rt.func_sentence() in README


def test_paper_scale_timing_is_quoted_from_its_measurement():
    # docs/results/timing: `lesde run geomnist --scale paper`, timed (examples/timing.py)
    assert rt.timing_sentence() in README
    t = json.loads((ROOT / "docs/results/timing/summary.json").read_text(encoding="utf-8"))
    minutes = t["geomnist_paper"]["wall_seconds"] / 60
    hours = t["paper_scale"]["train_hours_at_that_rate"]
    assert (
        f"about {round(minutes)} min on 2 CPU cores, the whole paper about {hours:.1f} h" in README
    )


def test_demo_time_is_quoted_from_its_measurement():
    # docs/results/timing "demo": `make demo` timed (examples/timing.py RUN_DIR runs/demo)
    d = json.loads((ROOT / "docs/results/timing/summary.json").read_text(encoding="utf-8"))["demo"]
    quoted = (f"({d['wall_seconds']:.0f} s measured, {d['train_seconds']:.0f} s of it training, "
              "plus the set-up)")  # fmt: skip
    assert quoted in " ".join(README.split())


def test_results_readme_speed_numbers_are_the_committed_ones():
    t = json.loads((ROOT / "docs/results/timing/summary.json").read_text(encoding="utf-8"))
    b = json.loads((ROOT / "docs/results/train-bench/train.json").read_text(encoding="utf-8"))
    g = t["geomnist_paper"]
    prof = b["stage_profile_us"]
    prof_eval = prof["evaluation_per_trial"] / prof["n_eval_images"]
    for quoted in (
        f"{g['wall_seconds'] / 60:.1f} min end to end",
        f"{g['seconds']['train'] / 60:.1f} min of training at {g['train_rate']:,} trial-steps/s",
        f"{t['previous_engine_geomnist_train_seconds'] / 60:.1f} min of training for the previous",
        f"about {t['paper_scale']['train_hours_at_that_rate']:.1f} h of training",
        f"in the bench ({b['derived']['recording_overhead']:.0%})",
        f"per step) it is {b['derived']['recording_overhead_paper_schedule']:.0%}.",
        f"({b['derived']['recording_overhead']:.0%}), "
        f"{100 * b['derived']['recording_overhead']:.1f} % before rounding",
        f"a bare step of {b['stage_profile_us']['step']:.1f} µs per trial",
        f"takes {prof_eval:.1f} µs per image and trial "
        f"({b['stage_profile_us']['evaluation_per_trial']:,.0f} µs for "
        f"{b['stage_profile_us']['n_eval_images']:.0f} images)",
    ):
        assert " ".join(quoted.split()) in " ".join(RESULTS_README.split()), quoted
