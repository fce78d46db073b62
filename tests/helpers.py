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


def kill_when_steps_done(proc, meta: Path, min_steps: int, timeout: float = 120) -> int | None:
    """SIGKILL ``proc`` once ``meta.json`` reports ``min_steps`` steps done.

    Polls the file the trainer writes after each chunk (atomically; a read that races a
    replace is retried). Returns the steps done at the kill, None if it finished first.
    """
    import json
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        if meta.exists():
            try:
                done = json.loads(meta.read_text()).get("steps_done", 0)
            except (OSError, json.JSONDecodeError):
                continue
            if done >= min_steps:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = done
                break
        time.sleep(0.01)
    proc.wait()
    return killed_at
