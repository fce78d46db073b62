"""`lesde.Recorder` in a plain PyTorch loop: a store open_run reads and analyse reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lesde
from lesde.store import run_status

N_TRIALS, N_STEPS = 3, 300


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.data / 16.0, dtype=torch.float32), torch.tensor(d.target)


def _loop(out, x, y, *, stop_at=None):
    """Three MLPs trained one after the other, recorded; ``stop_at`` = (trial, step) raises."""
    xp, yp = x[:100].numpy(), y[:100].numpy()
    with lesde.Recorder(out, n_trials=N_TRIALS, n_steps=N_STEPS, probes=(xp, yp),
                        val=(x[1500:].numpy(), y[1500:].numpy()), n_checkpoints=7,
                        chunk_steps=100) as rec:  # fmt: skip
        for r in range(N_TRIALS):
            torch.manual_seed(r)
            net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(),
                                      torch.nn.Linear(32, 10))  # fmt: skip
            opt = torch.optim.SGD(net.parameters(), lr=0.05)
            rec.track(r, net, opt)
            idx = np.random.default_rng(r).integers(0, 1500, N_STEPS)  # a function of (r, m)
            for m in range(rec.start(r), N_STEPS):
                if stop_at == (r, m):
                    raise KeyboardInterrupt
                if rec.is_checkpoint(m):
                    rec.checkpoint(r, m, net)
                i = int(idx[m])
                z = net(x[i : i + 1])
                loss = F.cross_entropy(z, y[i : i + 1])
                rec.step(r, z, y[i], loss=loss, index=i)
                opt.zero_grad()
                loss.backward()
                opt.step()
            rec.checkpoint(r, N_STEPS, net)
    return rec


@pytest.fixture(scope="module")
def recorded(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "run"
    _loop(out, *digits)
    return out


def test_store_reads_back_and_learns(recorded, digits):
    ds = lesde.open_run(recorded)
    assert ds.attrs["status"] == "complete"
    assert ds.sizes["trial"] == N_TRIALS and ds.sizes["step"] == N_STEPS
    assert ds.sizes["logit"] == 10  # K = 10
    # the recorded logits are the network's on the recorded sample: trial 0, step 1
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    i = int(ds["sample_index"].values[0, 0])
    x, _ = digits
    np.testing.assert_allclose(ds["sample_logits"].values[0, 0],
                               net(x[i : i + 1]).detach().numpy()[0], rtol=1e-6)  # fmt: skip
    acc = ds["val_acc"].values
    assert acc[:, -1].mean() > acc[:, 0].mean() + 0.3  # it learned


def test_interrupted_loop_resumes_bitwise(recorded, digits, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _loop(out, *digits, stop_at=(1, 250))
    assert run_status(out) == "running"  # a half-finished store is not complete
    with pytest.warns(UserWarning, match="incomplete"):
        half = lesde.open_run(out, allow_incomplete=True)
    assert np.isnan(half["sample_logits"].values[2]).all()  # trial 2 not started
    _loop(out, *digits)
    a, b = lesde.open_run(recorded), lesde.open_run(out)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)


def test_analyse_turns_it_into_a_report(recorded, tmp_path):
    s = lesde.analyse(recorded, tmp_path / "an", log=lambda m: None)
    assert (tmp_path / "an" / "report.html").exists()
    assert s["key"]["learned"] is True and s["key"]["separable_fraction_final"] == 1.0


def test_bad_records_are_refused(digits, tmp_path):
    x, y = digits
    with lesde.Recorder(tmp_path / "r", n_trials=1, n_steps=5, probes=(x[:20].numpy(),
                        y[:20].numpy()), n_checkpoints=2) as rec:  # fmt: skip
        with pytest.raises(ValueError, match="K = 10 values"):
            rec.step(0, torch.zeros(1, 3), 0)
        with pytest.raises(ValueError, match="not a checkpoint"):
            rec.checkpoint(0, 3, probe_logits=np.zeros((20, 10)))
    assert run_status(tmp_path / "r") == "running"  # nothing recorded: not complete
    with pytest.raises(ValueError, match="holds a different recording"):
        with lesde.Recorder(tmp_path / "r", n_trials=2, n_steps=5,
                            probes=(x[:20].numpy(), y[:20].numpy()), n_checkpoints=2):  # fmt: skip
            pass
