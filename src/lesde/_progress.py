"""Progress of long work: a tqdm bar in a terminal, plain lines in a log file.

Nested tqdm bars (``lesde run paper``: the paper's bar, each sub-run's training bar)
redraw with carriage returns, which a log file keeps as one unreadable line. Outside a
terminal `progress_bar` returns a `LineProgress` instead: one line when the work ends
(what, how far, the rate) and at most one every ``every`` seconds before, as tqdm users
expect from ``tqdm(..., file=log)`` with ``mininterval``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["progress_bar", "LineProgress"]


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


class LineProgress:
    """tqdm's ``update`` / ``set_postfix_str`` / ``close`` as plain lines.

    Args:
        total: units of work. desc: what is done. unit: the unit's name.
        initial: units already done (a resumed run). every: seconds between lines.
        file: where to write (default stderr).
    """

    def __init__(self, total: float, *, desc: str, unit: str = "it", initial: float = 0,
                 every: float = 60.0, file: TextIO | None = None) -> None:  # fmt: skip
        self.total, self.desc, self.unit = float(total), desc, unit
        self.n = self.start_n = float(initial)
        self.every, self.file = every, file if file is not None else sys.stderr
        self.t0 = self.last = time.perf_counter()
        self.postfix = ""
        self.closed = False

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self._line("")

    def set_postfix_str(self, s: str) -> None:
        self.postfix = s

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line(" (done)" if self.n >= self.total else " (stopped)")

    def _line(self, end: str) -> None:
        dt = max(time.perf_counter() - self.t0, 1e-9)
        rate = (self.n - self.start_n) / dt
        frac = self.n / self.total if self.total > 0 else 1.0
        post = f" [{self.postfix}]" if self.postfix else ""
        print(f"{self.desc}{post}: {frac:.0%} ({_human(self.n)}/{_human(self.total)} "
              f"{self.unit}s), {_human(rate)} {self.unit}s/s, {dt:.0f} s{end}",
              file=self.file, flush=True)  # fmt: skip


def progress_bar(total: float, *, desc: str, unit: str = "it", initial: float = 0,
                 file: TextIO | None = None, every: float = 60.0, **tqdm_kw: Any):  # fmt: skip
    """A tqdm bar when ``file`` (default stderr) is a terminal, else a `LineProgress`
    printing at most every ``every`` seconds (0: at every update) and at the end."""
    stream = file if file is not None else sys.stderr
    if not getattr(stream, "isatty", lambda: False)():
        return LineProgress(total, desc=desc, unit=unit, initial=initial, every=every,
                            file=stream)  # fmt: skip
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=stream, **tqdm_kw)
