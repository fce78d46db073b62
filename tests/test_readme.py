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
    assert len(blocks) == 2  # the API tour, and "Your own training loop"
    ns: dict = {}
    exec(compile(blocks[0], str(README), "exec"), ns)  # noqa: S102 - our own README
    # The example estimates from exact L-model trajectories: the rates it recovers must be
    # the model's up to the Savitzky–Golay bias. The derivative of a quadratic least-squares
    # fit over k = −m..m (m = 10, spacing h = 5) is f′ + f‴·h²·Σk⁴/(6Σk²) + O(h⁴), i.e.
    # a bias of 11·h²·α″(t) on α̂; with α = 0.02(1+t)^−0.4, α″ = 0.0112(1+t)^−2.4. The
    # measured error is 1.09× that leading term at most (5e-5 absolute, 1.6 % relative at
    # t = 100, falling as t^−2); 1.5× it fails a rate off by any factor ≥ 1.03.
    ts, model = ns["ts"], ns["model"]
    a_true, b_true = model.rates(ts)
    inner = slice(20, -20)  # the filter's edge points are one-sided fits
    bias = 11 * 5.0**2 * 0.02 * 0.4 * 1.4 * (1 + ts[inner]) ** -2.4
    assert np.all(np.abs(ns["alpha_hat"][inner] - a_true[inner]) <= 1.5 * bias)
    # β is constant: B = βt is linear, which the filter differentiates exactly (rounding)
    np.testing.assert_allclose(ns["beta_hat"][inner], b_true[inner], rtol=1e-9)
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
    from lesde.studies import registry

    for name in experiments:
        registry.get(name)  # raises for an unknown experiment


def _doc_files() -> list[Path]:
    root = README.parent
    return [README, *sorted((root / "docs").rglob("*.md"))]


def test_links_in_readme_and_docs_resolve_inside_the_repository():
    root = README.parent.resolve()
    n = 0
    for doc in _doc_files():
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://|#|mailto:", target):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(root), f"{doc.name} links outside the repository: {target}"
            assert path.exists(), f"{doc.name} links to a missing file: {target}"
            n += 1
    assert n >= 2  # README links at least docs/math.md and its figure


def test_docs_do_not_send_users_outside_the_repository():
    # the team's design notes are not shipped: README, docs and docstrings stand alone
    src = README.parent / "src" / "lesde"
    for f in [*_doc_files(), *src.rglob("*.py")]:
        assert "../shared" not in f.read_text(encoding="utf-8"), f


def test_layout_section_names_every_module():
    # README's Layout block must match the tree: each package and module of src/lesde
    # (and each module of experiments/, estimate/, analysis/, train/) appears in it
    text = README.read_text(encoding="utf-8")
    block = text[text.index("## Layout") :]
    block = block[: block.index("```", block.index("```") + 3)]
    src = README.parent / "src" / "lesde"
    names = [p.stem if p.suffix else p.name for p in src.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or
             (p.is_dir() and (p / "__init__.py").exists())]  # fmt: skip
    for sub in ("experiments", "estimate", "analysis", "train"):
        names += [p.stem for p in (src / sub).glob("*.py")
                  if p.stem not in ("__init__", "registry", "_labelled")
                  and (sub != "experiments" or p.stem in ("config", "stages", "outputs", "pipeline",
                                                          "runner", "synthetic"))]  # fmt: skip
    missing = [n for n in names if n not in block]
    assert not missing, f"README Layout does not name {missing}"


def test_own_loop_example_runs_and_reports(tmp_path, monkeypatch):
    # README "Your own training loop", as written, in a scratch directory
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(_python_blocks()[1], str(README), "exec"), ns)  # noqa: S102 - our own README
    summary = ns["summary"]
    assert summary["key"]["val_acc_final"] > 0.5  # 3 MLPs × 300 steps on 10 digits
    assert summary["key"]["verdict_margin_noise_level"] in ("separable", "undetermined",
                                                            "not separable")  # fmt: skip
    assert (tmp_path / "runs" / "my-loop-analysis" / "report.html").exists()
    from lesde.store import run_status

    assert run_status(tmp_path / "runs" / "my-loop") == "complete"
