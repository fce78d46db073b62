"""Direct (step-level) local elasticity (docs/math.md §4; He & Su 2020).

Around one SGD step m on sample J of class L, the features of probe samples move by
ΔX_i^k = X_i^k(m) − X_i^k(m−1). The model (paper eq. 4) says
ΔX_i^k ≈ E_{k,L}(m) · H_{kL} · X_J^L(m−1) (per-iteration units, h folded into E), so

    Ê_{k,L}(m) = Σ_i ⟨ΔX_i^k, H_kL X_J^L⟩ / Σ_i ‖H_kL X_J^L‖²,

the least-squares coefficient over the probes i of class k. One step measures one
column (l = L) of E; α̂(m) = Ê_{L,L}, β̂(m) = mean over k ≠ L of Ê_{k,L}. No ODE is
inverted, so this checks the A/B route of `lesde.estimate_ab`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["DirectLE", "direct_local_elasticity", "direct_from_record", "add_direct_le"]


class DirectLE(NamedTuple):
    """Result of `direct_local_elasticity`.

    Attributes:
        E: (..., K, K) Ê_{k,l}(m); only the column l = L of the trained class is finite,
            the others are NaN.
        alpha: (...) α̂(m) = Ê_{L,L}.
        beta: (...) β̂(m) = mean_{k≠L} Ê_{k,L}.
    """

    E: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray


def direct_local_elasticity(
    before: Any,
    after: Any,
    probe_label: Any,
    sample_features: Any,
    sample_label: Any,
    *,
    n_classes: int | None = None,
    H: str = "I",
) -> DirectLE:
    """Ê_{k,L}(m), α̂(m), β̂(m) from probe features before and after one SGD step.

    Args:
        before: (..., P, p) probe features X_i^k(m−1) (logits: p = K).
        after: (..., P, p) the same probes after the step, X_i^k(m).
        probe_label: (P,) class k of each probe, in [0, K).
        sample_features: (..., p) X_J^L(m−1), the trained sample's features before the
            step.
        sample_label: (...) L, the trained sample's class.
        n_classes: K; default ``max(probe_label) + 1``.
        H: ``"I"`` (H_kL = I_p, the I-model) or ``"L"`` (H_kL = d̂_L d̂_Lᵀ, the
            logits-as-features L-model; needs p = K).

    Returns:
        `DirectLE` (E (..., K, K), alpha (...), beta (...)). A class with no probe, or a
        zero H X_J, gives NaN.

    Raises:
        ValueError: inconsistent shapes, labels out of range, unknown ``H``.
    """
    before = np.asarray(before, dtype=float)
    after = np.asarray(after, dtype=float)
    probe_label = np.asarray(probe_label)
    x = np.asarray(sample_features, dtype=float)
    lab = np.asarray(sample_label)
    if before.ndim < 2 or before.shape != after.shape:
        raise ValueError(
            f"`before` and `after` must share a shape (..., P, p), got {before.shape} "
            f"and {after.shape}"
        )
    lead, (P, p) = before.shape[:-2], before.shape[-2:]
    if probe_label.shape != (P,) or probe_label.dtype.kind not in "iu":
        raise ValueError(f"`probe_label` must be ({P},) ints, got {probe_label.shape}")
    if x.shape != (*lead, p):
        raise ValueError(f"`sample_features` must be {(*lead, p)}, got {x.shape}")
    if lab.shape != lead or (lab.size and lab.dtype.kind not in "iu"):
        raise ValueError(f"`sample_label` must be {lead} ints, got {lab.shape}")
    K = int(probe_label.max()) + 1 if n_classes is None else int(n_classes)
    if K < 2:
        raise ValueError(f"`n_classes` must be >= 2, got {K}")
    if probe_label.min() < 0 or probe_label.max() >= K or (lab.size and lab.max() >= K):
        raise ValueError(
            f"labels must lie in [0, {K}), got probes in [{probe_label.min()}, {probe_label.max()}]"
        )
    if H not in ("I", "L"):
        raise ValueError(f"`H` must be 'I' or 'L', got {H!r}")
    if H == "L" and p != K:
        raise ValueError(f"`H`='L' needs logits (p = K = {K}), got p = {p}")

    if H == "L":
        d = np.eye(K) - 1.0 / K  # row l: d_l = e_l − 1/K
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        dl = d[lab]  # (..., K)
        v = dl * np.sum(dl * x, axis=-1, keepdims=True)  # H_kL X_J = d̂_L (d̂_Lᵀ X_J)
    else:
        v = x
    vv = np.sum(v * v, axis=-1)  # (...,) ‖H X_J‖²
    proj = np.einsum("...ip,...p->...i", after - before, v)  # (..., P) ⟨ΔX_i, H X_J⟩
    onehot = (probe_label[:, None] == np.arange(K)).astype(float)  # (P, K)
    counts = onehot.sum(axis=0)  # (K,)
    with np.errstate(invalid="ignore", divide="ignore"):
        col = (proj @ onehot) / (counts * vv[..., None])  # (..., K): Ê_{k,L}
    E = np.full((*lead, K, K), np.nan)
    np.put_along_axis(
        E, lab[..., None, None] * np.ones((*lead, K, 1), dtype=int), col[..., None], axis=-1
    )
    alpha = np.take_along_axis(col, lab[..., None], axis=-1)[..., 0]
    others = np.arange(K) != lab[..., None]  # (..., K)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.where(others, col, 0.0).sum(-1) / others.sum(-1)
    return DirectLE(E=E, alpha=alpha, beta=beta)


def add_direct_le(ds: Any) -> Any:
    """Add the direct local elasticity ``le_E``, ``le_alpha``, ``le_beta`` to a record.

    The trainer records only the raw material — the probes' logits just before and
    after the update of each ``le_step`` (``le_probe_before``/``le_probe_after``), the
    class trained then (``le_class``) and the trained sample's logits (``sample_logits``
    at that step); this derives Ê_{k,L}(m), α̂(m), β̂(m) with `direct_local_elasticity`
    and H = ``attrs["le_model"]``. Records that already hold them (written before
    training stopped running estimators) are returned unchanged.

    Args:
        ds: an ``xarray.Dataset`` of a training record (batch size 1).

    Returns:
        ``ds`` with the three variables (dims (trial, le_step[, class_k, class_l])).
    """
    if "le_probe_before" not in ds or "le_alpha" in ds or ds.sizes.get("le_step", 0) == 0:
        return ds
    steps = np.asarray(ds["le_step"].values, dtype=int)  # (M,)
    lab = np.asarray(ds["le_class"].values, dtype=np.int64)  # (R, M)
    z = np.asarray(ds["sample_logits"].values)[:, steps - 1]  # (R, M, K)
    K = int(ds.sizes["logit"])
    res = direct_local_elasticity(
        np.asarray(ds["le_probe_before"].values), np.asarray(ds["le_probe_after"].values),
        np.asarray(ds["probe_label"].values), z, lab, n_classes=K,
        H=str(ds.attrs.get("le_model", "I")),
    )  # fmt: skip
    ds["le_E"] = (("trial", "le_step", "class_k", "class_l"), res.E)
    ds["le_alpha"] = (("trial", "le_step"), res.alpha)
    ds["le_beta"] = (("trial", "le_step"), res.beta)
    return ds


def direct_from_record(ds: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Direct α̂, β̂ from a run opened with `lesde.open_run`.

    Args:
        ds: the run's ``xarray.Dataset`` (needs ``le_alpha``, ``le_beta``, ``le_step``).

    Returns:
        ``steps`` (M,), ``alpha`` (R, M), ``beta`` (R, M).

    Raises:
        ValueError: the run recorded no direct-LE steps.
    """
    if "le_alpha" not in ds or ds.sizes.get("le_step", 0) == 0:
        raise ValueError("`ds` has no direct local-elasticity record (train with le_steps)")
    return (
        np.asarray(ds["le_step"].values),
        np.asarray(ds["le_alpha"].values, dtype=float),
        np.asarray(ds["le_beta"].values, dtype=float),
    )
