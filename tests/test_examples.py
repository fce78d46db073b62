"""README "Your own model": the two example networks trained with backend "func",
analysed with `lesde analyse`, and the report rendered in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import images_loaded
from lesde.cli import app

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models.py"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("digits_mlp", ["--data", "digits", "--classes", *map(str, range(10))]),  # K = 10
        (
            "small_resnet",
            ["--data", "geomnist", "--n-per-class", "30", "--n-val-per-class", "10"],
        ),  # fmt: skip
    ],
)
def test_example_model_trains_analyses_and_reports(name, data, tmp_path):
    run = tmp_path / name
    assert app(["train", *data, "--model", f"{MODELS}:{name}", "--trials", "3",
                "--steps", "200", "--checkpoints", "5", "--schedule", "linear",
                "--probe-per-class", "4", "--out", str(run), "--no-progress"]) == 0  # fmt: skip
    assert app(["analyse", str(run)]) == 0
    report = Path(f"{run}-analysis") / "report.html"
    loaded, total = images_loaded(report, tmp_path / "chrome")
    assert total >= 5 and loaded == total
