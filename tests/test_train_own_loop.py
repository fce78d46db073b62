"""`lesde.Recorder` in a plain PyTorch loop: a store open_run reads and analyse reports."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lesde
from lesde.cli import app
from lesde.store import run_status
from lesde.train.premise import optimizer_caveat

N_TRIALS, N_STEPS = 3, 300


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.data / 16.0, dtype=torch.float32), torch.tensor(d.target)


def _loop(out, x, y, *, stop_at=None, make_opt=None):
    """Three MLPs trained one after the other, recorded; ``stop_at`` = (trial, step) raises;
    ``make_opt(net)``: the optimizer (default plain SGD)."""
    xp, yp = x[:100].numpy(), y[:100].numpy()
    with lesde.Recorder(out, n_trials=N_TRIALS, n_steps=N_STEPS, probes=(xp, yp),
                        val=(x[1500:].numpy(), y[1500:].numpy()), n_checkpoints=7,
                        chunk_steps=100) as rec:  # fmt: skip
        for r in range(N_TRIALS):
            torch.manual_seed(r)
            net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(),
                                      torch.nn.Linear(32, 10))  # fmt: skip
            opt = (make_opt or (lambda n: torch.optim.SGD(n.parameters(), lr=0.05)))(net)
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
    with pytest.warns(UserWarning, match=r"incomplete.*trial 0: 0 of 5 steps recorded"):
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


def _mlp():
    return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10))


def _tiny(out, x, y, make_opt=None, *, n_trials=2, n_steps=20, final=True):
    """A short recorded loop; ``make_opt(net)`` builds the optimizer (None: not tracked
    with one); ``final=False`` forgets the last ``rec.checkpoint``."""
    with lesde.Recorder(out, n_trials=n_trials, n_steps=n_steps, probes=(x[:40].numpy(),
                        y[:40].numpy()), n_checkpoints=3, chunk_steps=10) as rec:  # fmt: skip
        for r in range(n_trials):
            torch.manual_seed(r)
            net = _mlp()
            opt = (make_opt or (lambda n: torch.optim.SGD(n.parameters(), lr=0.05)))(net)
            rec.track(r, net, opt if make_opt is not False else None)
            for m in range(rec.start(r), n_steps):
                if rec.is_checkpoint(m):
                    rec.checkpoint(r, m, net)
                i = (7 * m + r) % 1500
                z = net(x[i : i + 1])
                loss = F.cross_entropy(z, y[i : i + 1])
                rec.step(r, z, y[i], loss=loss, index=i)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if final:
                rec.checkpoint(r, n_steps, net)
    return rec


def test_forgotten_final_checkpoint_warns_and_analyse_says_how_to_finish(digits, tmp_path,
                                                                        capsys):  # fmt: skip
    out = tmp_path / "run"
    with pytest.warns(UserWarning) as got:
        rec = _tiny(out, *digits, final=False)
    msg = " ".join(str(w.message) for w in got if "incomplete" in str(w.message))
    assert "trial 0: checkpoint at step 20 not recorded — call rec.checkpoint(0, 20, net)" in msg
    assert "trial 1: checkpoint at step 20 not recorded" in msg and "resumable" in msg
    assert not rec.complete and run_status(out) == "running"
    # the advice fits a Recorder record: rerun the loop, not `lesde train --resume`
    with pytest.raises(ValueError, match="rerun your training loop") as err:
        lesde.analyse(out, tmp_path / "an", log=lambda m: None)
    assert "lesde train" not in str(err.value) and "checkpoint at step 20" in str(err.value)
    capsys.readouterr()
    assert app(["analyse", str(out), "--out", str(tmp_path / "an2")]) == 2
    cli_err = capsys.readouterr().err.strip()
    assert len(cli_err.splitlines()) == 1 and "same Recorder arguments" in cli_err
    # rerunning the loop as advised finishes it, without a warning
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        rec = _tiny(out, *digits)
    assert rec.complete and run_status(out) == "complete"
    assert not [w for w in again if "incomplete" in str(w.message)]


def test_interrupted_steps_are_named_in_the_warning(digits, tmp_path):
    x, y = digits
    with pytest.warns(UserWarning, match=r"trial 0: 3 of 20 steps recorded.*trial 1: 0 of 20"):
        with lesde.Recorder(tmp_path / "r", n_trials=2, n_steps=20, probes=(x[:40].numpy(),
                            y[:40].numpy()), n_checkpoints=3) as rec:  # fmt: skip
            for _ in range(3):
                rec.step(0, torch.zeros(10), 0)


def _meta(out):
    return json.loads((out / "meta.json").read_text())


def test_optimizer_is_recorded_and_a_non_sgd_one_is_a_caveat(digits, tmp_path, recorded):
    out = tmp_path / "adam"
    _tiny(out, *digits, lambda n: torch.optim.Adam(n.parameters(), lr=1e-3))
    opts = _meta(out)["optimizers"]
    assert len(opts) == 2 and all(o["class"] == "torch.optim.adam.Adam" for o in opts)
    g = opts[0]["param_groups"]
    assert len(g) == 1 and "params" not in g[0]
    assert g[0]["lr"] == 0.001 and g[0]["betas"] == [0.9, 0.999] and g[0]["amsgrad"] is False
    cav = optimizer_caveat(out)
    assert cav.startswith("trained by torch.optim.Adam (lr=0.001, betas=[0.9, 0.999]")
    assert "not plain batch-size-1 SGD" in cav and "outside the model's premise" in cav
    assert optimizer_caveat(tmp_path) is None  # not a record
    # the module's record: plain SGD on every trial, batch size 1: no caveat
    assert _meta(recorded)["optimizers"][0]["class"] == "torch.optim.sgd.SGD"
    assert optimizer_caveat(recorded) is None


def test_an_adam_loop_is_analysed_with_the_caveat_on_every_model_verdict(
    digits, tmp_path, recorded
):
    # the LE-SDE models SGD: the summary, every model verdict and the report say Adam
    out = tmp_path / "adam"
    _loop(out, *digits, make_opt=lambda n: torch.optim.Adam(n.parameters(), lr=1e-3))
    s = lesde.analyse(out, tmp_path / "an", log=lambda m: None)
    assert len(s.caveats) == 1 and "torch.optim.Adam" in s.caveats[0]
    model = [v for v in s.headline if v.kind != "measurement"]
    assert model and all("torch.optim.Adam" in v.why for v in model)
    assert all("Adam" not in v.why for v in s.headline if v.kind == "measurement")
    assert s.notes[0].startswith("CAVEAT: trained by torch.optim.Adam")
    html = (tmp_path / "an" / "report.html").read_text()
    assert "id='caveats'" in html and "torch.optim.Adam" in html
    # the same loop with plain SGD carries no caveat
    sgd = lesde.analyse(recorded, tmp_path / "an2", log=lambda m: None)
    assert sgd.caveats == ()
    assert "id='caveats'" not in (tmp_path / "an2" / "report.html").read_text()


def test_sgd_with_momentum_and_unknown_optimizers_are_caveats(digits, tmp_path):
    mom = tmp_path / "mom"
    _tiny(mom, *digits, lambda n: torch.optim.SGD(n.parameters(), lr=0.05, momentum=0.9))
    cav = optimizer_caveat(mom)
    assert cav.startswith("trained by torch.optim.SGD (lr=0.05, momentum=0.9")
    none = tmp_path / "none"
    _tiny(none, *digits, False)
    assert _meta(none)["optimizers"] == [None, None]
    assert optimizer_caveat(none) == (
        "the optimizer is unknown (no optimizer was passed to Recorder.track): the LE-SDE "
        "models plain batch-size-1 SGD"
    )
    # trial 1 with Adam, trial 0 plain SGD: the caveat names the trial
    mixed = tmp_path / "mixed"
    made = []

    def make(n):
        made.append(n)
        if len(made) == 2:
            return torch.optim.Adam(n.parameters())
        return torch.optim.SGD(n.parameters(), lr=0.05)

    _tiny(mixed, *digits, make)
    cav = optimizer_caveat(mixed)
    assert cav.startswith("trial 1 trained by torch.optim.Adam (") and "trial 0" not in cav


def test_caveat_of_a_train_record_reads_its_config(tmp_path):
    # a `lesde train` record is SGD; batch size, momentum or weight decay are a caveat
    for name, train, said in (("plain", {"lr": 0.005, "batch_size": 1}, None),
                              ("b4", {"lr": 0.005, "batch_size": 4}, "batch_size=4"),
                              ("mom", {"lr": 0.01, "batch_size": 1, "momentum": 0.5},
                               "momentum=0.5")):  # fmt: skip
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"train": train, "data": {}}))
        (d / "meta.json").write_text(json.dumps({"status": "complete"}))
        cav = optimizer_caveat(d)
        assert cav is None if said is None else (said in cav and cav.startswith("trained by SGD"))


def test_recorder_keywords_act_or_are_refused(digits, tmp_path):
    x, y = digits
    xp, yp = x[:20].numpy(), y[:20].numpy()
    kw = {"n_trials": 1, "n_steps": 5, "probes": (xp, yp)}
    with pytest.raises(ValueError, match="`n_checkpoints`.*`checkpoints`"):
        lesde.Recorder(tmp_path / "a", n_checkpoints=3, checkpoints=[0, 5], **kw)
    with pytest.raises(ValueError, match="`n_checkpoints` must be <= n_steps \\+ 1 = 6"):
        lesde.Recorder(tmp_path / "a", n_checkpoints=9, **kw)
    with pytest.raises(ValueError, match="`val`"):
        lesde.Recorder(tmp_path / "a", val=(xp, yp[:3]), **kw)
    net = _mlp()
    pz = np.zeros((20, 10))
    with pytest.warns(UserWarning, match="incomplete"):
        with lesde.Recorder(tmp_path / "f", n_features=4, val=(xp, yp), n_checkpoints=2,
                            **kw) as rec:  # fmt: skip
            with pytest.raises(ValueError, match=r"`features` \(20, 4\) is required"):
                rec.checkpoint(0, 0, net)  # n_features given: features must come too
            with pytest.raises(ValueError, match=r"`features` must be \(20, 4\)"):
                rec.checkpoint(0, 0, net, features=np.zeros((20, 3)))
            with pytest.raises(ValueError, match="`probe_logits` would be overwritten"):
                rec.checkpoint(0, 0, net, probe_logits=pz, features=np.zeros((20, 4)))
            with pytest.raises(ValueError, match="`val_loss`, `val_acc` would be overwritten"):
                rec.checkpoint(0, 0, net, val_loss=1.0, val_acc=0.5, features=np.zeros((20, 4)))
            with pytest.raises(ValueError, match="`val` set is evaluated only with `model`"):
                rec.checkpoint(0, 0, probe_logits=pz, features=np.zeros((20, 4)))
            with pytest.raises(ValueError, match="`model` or `probe_logits` is required"):
                rec.checkpoint(0, 0)
            with pytest.raises(ValueError, match=r"`trial` must be an int in \[0, 1\), got 1"):
                rec.step(1, torch.zeros(10), 0)
            with pytest.raises(ValueError, match="`trial`"):
                rec.track(-1, net)
            rec.checkpoint(0, 0, net, features=np.ones((20, 4)))  # acts: features written
            stored = np.asarray(rec.writer.group["probe_features"][0, 0])
            assert stored.shape == (20, 4) and (stored == 1).all()
    with pytest.warns(UserWarning, match="incomplete"):
        with lesde.Recorder(tmp_path / "n", n_checkpoints=2, **kw) as rec:
            with pytest.raises(ValueError, match="`features`: the Recorder records none"):
                rec.checkpoint(0, 0, probe_logits=pz, features=np.zeros((20, 4)))
