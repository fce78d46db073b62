"""README "Your own model": the two example networks trained with backend "func",
analysed with `lesde analyse`, and the report rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lesde.cli import app

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models.py"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _images_loaded(report: Path, user_dir: Path) -> tuple[int, int]:
    if not shutil.which(CHROMIUM):
        pytest.fail("headless Chromium not found: `make test` installs the Debian `chromium`")
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={user_dir}", "--virtual-time-budget=5000",
         "--dump-dom", report.resolve().as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    m = re.search(r'data-images-loaded="(\d+)/(\d+)"', out.stdout)
    assert m, out.stderr[-500:]
    return int(m.group(1)), int(m.group(2))


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
    loaded, total = _images_loaded(report, tmp_path / "chrome")
    assert total >= 5 and loaded == total
