"""Shared test helpers (imported by the test modules as ``helpers``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def images_loaded(report: Path, user_dir: Path) -> tuple[int, int]:
    """(loaded, total) images of an HTML report rendered in headless Chromium."""
    if not shutil.which(CHROMIUM):
        pytest.fail("headless Chromium not found: `make test` installs the Debian `chromium`")
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={user_dir}", "--virtual-time-budget=5000",
         "--dump-dom", Path(report).resolve().as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    m = re.search(r'data-images-loaded="(\d+)/(\d+)"', out.stdout)
    assert m, f"no load marker in the rendered DOM; stderr: {out.stderr[-500:]}"
    return int(m.group(1)), int(m.group(2))
