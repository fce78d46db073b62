"""Every figure of a run is drawn, to PNG and PDF, and is not blank."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from lesde.experiments import pipeline as pl
from lesde.figures import FIGURE_TITLES, draw_figures, figure_list


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fig")
    pl.run_pipeline(
        d, experiment="synthetic", config={}, cfg=pl.PipelineConfig(n_paths=20, n_boot=10),
        train=lambda p: pl.synthetic_record(p, n_trials=5, n_steps=600, n_checkpoints=13),
        log=lambda m: None,
    )  # fmt: skip
    return d


SINGLE = ("fig1_trajectories", "fig3_estimates", "fig5_simulated", "rd", "le_matrix", "etf")


def test_single_run_figures(run_dir):
    written = draw_figures(run_dir)
    names = {p.stem for p in written}
    assert set(SINGLE) <= names
    for name in SINGLE:
        png, pdf = run_dir / "figures" / f"{name}.png", run_dir / "figures" / f"{name}.pdf"
        assert pdf.read_bytes()[:5] == b"%PDF-"
        img = mpimg.imread(png)  # (H, W, 4) floats in [0, 1]
        assert img.shape[0] > 200 and img.shape[1] > 300
        # not a blank canvas: a real plot has many distinct colours and dark ink
        assert np.unique(img[..., :3].reshape(-1, 3), axis=0).shape[0] > 50
        assert (img[..., :3].mean(axis=-1) < 0.3).mean() > 0.002
    items = figure_list(run_dir)
    assert [i["name"] for i in items] == [n for n in FIGURE_TITLES if n in names]


def test_direct_vs_inverted_drawn_when_recorded(run_dir, tmp_path):
    """With direct-LE arrays in analysis.npz the extra figure appears."""
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(run_dir, d)
    a = pl.load_npz(d / "analysis.npz")
    a.update(le_steps=np.array([10.0, 100, 400]), le_alpha=np.full((5, 3), 0.01),
             le_beta=np.full((5, 3), -0.002))  # fmt: skip
    pl.save_npz_atomic(d / "analysis.npz", **a)
    names = {p.stem for p in draw_figures(d)}
    assert "direct_vs_inverted" in names


def test_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="summary.json"):
        draw_figures(tmp_path)


def test_cli_figures(run_dir, capsys):
    from lesde.cli import app

    assert app(["figures", str(run_dir)]) == 0
    printed = capsys.readouterr().out.split()
    assert str(run_dir / "figures" / "rd.pdf") in printed
    assert app(["figures", str(run_dir / "nope")]) == 2
