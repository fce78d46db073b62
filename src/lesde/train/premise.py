"""What trained a record, and what that means for the LE-SDE's premise.

The LE-SDE is a model of plain SGD with batch size 1 (paper §2). `lesde.Recorder` stores
the class and settings of each trial's tracked optimizer in the record's ``meta.json``
(``"optimizers"``, `describe_optimizer`); `lesde train` records hold their SGD options in
``config.json``. `optimizer_caveat` reads either and says, in one sentence, when the
record lies outside the premise; the pipeline puts that sentence on every verdict.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["describe_optimizer", "optimizer_caveat"]

# flags of torch.optim that select an implementation, not the update rule
_IMPL_FLAGS = ("foreach", "fused", "capturable", "differentiable")


def describe_optimizer(optimizer: Any) -> dict[str, Any]:
    """An optimizer's class and settings, JSON-able (the ``"optimizers"`` entries of meta).

    Args:
        optimizer: a ``torch.optim.Optimizer`` (anything with ``param_groups``).

    Returns:
        ``{"class": "torch.optim.adam.Adam", "param_groups": [{"lr": 0.001, "betas":
        [0.9, 0.999], ...}, ...]}``: every parameter group's hyper-parameters except
        ``"params"`` (tuples as lists, tensors as floats, other objects as their repr).
    """
    cls = type(optimizer)
    groups = [
        {str(k): _json_value(v) for k, v in g.items() if k != "params"}
        for g in getattr(optimizer, "param_groups", [])
    ]
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "param_groups": groups}


def _json_value(v: Any) -> Any:
    if hasattr(v, "detach") and getattr(v, "numel", lambda: 0)() == 1:
        v = v.detach().cpu().item()
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return float(v)
    if isinstance(v, list | tuple):
        return [_json_value(u) for u in v]
    return repr(v)


def _is_plain_sgd(d: dict[str, Any]) -> bool:
    groups = d.get("param_groups") or [{}]
    return (
        d.get("class") == "torch.optim.sgd.SGD"
        and all(
            not g.get("momentum") and not g.get("weight_decay") and not g.get("nesterov")
            and not g.get("maximize")
            for g in groups
        )
        and len({g.get("lr") for g in groups}) == 1
    )  # fmt: skip


def _describe(d: dict[str, Any]) -> str:
    """``torch.optim.Adam (lr=0.001, betas=[0.9, 0.999], ...)`` for a caveat."""
    cls = str(d.get("class"))
    parts = cls.split(".")
    if cls.startswith("torch.optim.") and len(parts) == 4:
        cls = f"torch.optim.{parts[-1]}"  # torch.optim.adam.Adam -> torch.optim.Adam
    groups = d.get("param_groups") or []
    if not groups:
        return cls
    shown = ", ".join(f"{k}={v}" for k, v in groups[0].items()
                      if k not in _IMPL_FLAGS and v is not None)  # fmt: skip
    more = f"; {len(groups)} parameter groups, the first shown" if len(groups) > 1 else ""
    return f"{cls} ({shown}{more})"


def _trials(rs: list[int]) -> str:
    return ("trial " if len(rs) == 1 else "trials ") + ", ".join(str(r) for r in rs)


def optimizer_caveat(train_dir: str | os.PathLike) -> str | None:
    """What a record's optimizer means for the LE-SDE's verdicts (a model of plain SGD).

    Args:
        train_dir: a training record (the directory with ``meta.json`` and
            ``config.json``), or a run directory whose ``train/`` is one.

    Returns:
        None when the record was trained by plain batch-size-1 SGD (a `lesde train`
        record without momentum, weight decay or larger batches; a `lesde.Recorder`
        record whose every trial was tracked with ``torch.optim.SGD`` without momentum,
        weight decay, Nesterov or maximize, one learning rate), or when the record says
        nothing about its training (an imported ``.npz`` of logits). Otherwise one
        sentence saying what trained it (or that the optimizer is unknown) and that the
        verdicts are outside the model's premise.
    """
    from lesde.store import read_json

    d = Path(train_dir)
    if not (d / "meta.json").exists() and (d / "train" / "meta.json").exists():
        d = d / "train"
    if not (d / "meta.json").exists() or not (d / "config.json").exists():
        return None
    config, meta = read_json(d / "config.json"), read_json(d / "meta.json")
    outside = "the LE-SDE models SGD, so its verdicts on this run are outside the model's premise"
    if "train" in config:  # `lesde train` / train_ensemble: SGD, maybe not plain
        t = config["train"]
        extra = {k: t.get(k, 0.0) for k in ("momentum", "weight_decay") if t.get(k, 0.0)}
        if int(t.get("batch_size", 1)) != 1:
            extra["batch_size"] = t["batch_size"]
        if not extra:
            return None
        shown = ", ".join(f"{k}={v}" for k, v in {"lr": t.get("lr"), **extra}.items())
        return f"trained by SGD ({shown}), not plain batch-size-1 SGD: {outside}"
    if "recorder" not in config:
        return None
    R = int(config["recorder"].get("n_trials", 0))
    opts = list(meta.get("optimizers") or [None] * R)
    known = [(r, o) for r, o in enumerate(opts) if o is not None]
    if not known:
        return ("the optimizer is unknown (no optimizer was passed to Recorder.track): "
                "the LE-SDE models plain batch-size-1 SGD")  # fmt: skip
    unknown = [r for r, o in enumerate(opts) if o is None]
    odd: dict[str, list[int]] = {}
    for r, o in known:
        if not _is_plain_sgd(o):
            odd.setdefault(_describe(o), []).append(r)
    if not odd and not unknown:
        return None
    said = []
    if odd:
        if len(odd) == 1 and len(next(iter(odd.values()))) == len(opts):
            said.append(f"trained by {next(iter(odd))}")
        else:
            said.append("; ".join(f"{_trials(rs)} trained by {desc}" for desc, rs in odd.items()))
    if unknown:
        said.append(f"the optimizer of {_trials(unknown)} is unknown (not passed to "
                    "Recorder.track)")  # fmt: skip
    return f"{'; '.join(said)}, not plain batch-size-1 SGD: {outside}"
