"""The README's API example runs as written, and the commands it names exist."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_api_example_runs_and_recovers_the_rates():
    blocks = _python_blocks()
    assert len(blocks) == 1
    ns: dict = {}
    exec(compile(blocks[0], str(README), "exec"), ns)  # noqa: S102 - our own README
    # The example estimates from exact L-model trajectories: the rates it recovers must be
    # the model's. Savitzky–Golay (order 2, 21 points, Δt = 5) on these smooth power laws
    # is exact to O(h² α'') ~ 1e-6 relative; 1e-3 absolute on α ~ 1e-2 catches any wrong
    # sign, factor or index in the chain.
    ts, model = ns["ts"], ns["model"]
    a_true, b_true = model.rates(ts)
    inner = slice(20, -20)  # the filter's edge points are one-sided fits
    np.testing.assert_allclose(ns["alpha_hat"][inner], a_true[inner], atol=1e-3)
    np.testing.assert_allclose(ns["beta_hat"][inner], b_true[inner], atol=1e-3)
    assert ns["rd"].shape == (ts.size, 3)
    assert np.all(np.isfinite(ns["rd"]))
    assert 0.0 < ns["r_gamma"] < 1.0  # γ = α − β does not decay fast enough to converge


def test_commands_named_in_readme_exist():
    text = README.read_text(encoding="utf-8")
    named = set(re.findall(r"^lesde (\w[\w-]*)", text, flags=re.M))
    assert named >= {"run", "figures", "train", "sweep"}
    out = subprocess.run(
        [sys.executable, "-m", "lesde.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    for name in named:
        assert name in out.stdout, f"README names `lesde {name}`, the CLI does not"
    experiments = set(re.findall(r"^lesde run ([\w-]+)", text, flags=re.M))
    from lesde.experiments import registry

    for name in experiments:
        registry.get(name)  # raises for an unknown experiment
