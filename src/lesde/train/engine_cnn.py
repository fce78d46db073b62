"""Backend "cnn": the engines of the paper's CNN.

- `EnsembleCNN` (the default): each SGD step, or each run of steps between evaluations,
  is one call of a compiled C kernel (`lesde.train.kernel_src`, built by
  `lesde.train.engine_fast`), checked once per process against `BatchedCNN`;
- `BatchedCNN`: the previous engine, a hand-written batched forward and backward in torch
  ops (grouped convolutions, ``bmm``), used where the kernel is not (other devices, no C
  compiler, a failed check, ``LESDE_CNN_KERNEL=off``).

The evaluations (`EnsembleCNN.forward_shared`: probes, validation, direct-LE probes) are
a second function of the kernel, ~1.2x the torch forward (``bench/results/train.md``).

Measured on 2 cores (``bench/results/train.md``): the compiled step ~3.5x the previous
engine's rate on 100 trials, float32, batch 1.

Why this file is long: the stacked layout and the hand-written forward and backward
passes, whose parts only make sense together, and the kernel's check against them.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from lesde.train.config import _CL, aten, step_by_step
from lesde.train.nets import KERNEL, PARAM_NAMES, CNNSpec

# --------------------------------------------------------------------------- engine


class BatchedCNN:
    """R CNNs stored stacked, with a hand-written batched forward and backward in torch ops.

    The previous "cnn" engine, kept for what the compiled step (`EnsembleCNN`) does not
    cover: other devices, a failed build or check.

    Layout: conv weights (R·c_out, c_in, 5, 5) and biases (R·c_out,) for grouped
    convolutions; FC weights (R, n_out, n_in) and biases (R, 1, n_out) for ``baddbmm``.

    Args:
        spec: network shape.
        params: one {name: tensor} per trial (names of `PARAM_NAMES`).
        device, dtype: where and how the stacked parameters live.
    """

    def __init__(
        self,
        spec: CNNSpec,
        params: list[dict[str, torch.Tensor]],
        *,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.spec = spec
        self.R = len(params)
        self.device, self.dtype = device, dtype
        # memory format of the conv/pool stages (see `step`); float64 has no oneDNN
        # kernels and its native convolutions are faster in NCHW (measured)
        self.mf = _CL if dtype == torch.float32 else torch.contiguous_format
        stacked = {n: torch.stack([p[n] for p in params]) for n in PARAM_NAMES}
        self.load_state(stacked)

    def load_state(self, stacked: dict[str, torch.Tensor]) -> None:
        """Set the parameters from {name: (R, *shape)} tensors."""
        R, kw = self.R, {"device": self.device, "dtype": self.dtype}
        t = {n: stacked[n].to(**kw).contiguous() for n in PARAM_NAMES}
        self.W1 = t["conv1.weight"].reshape(
            R * t["conv1.weight"].shape[1], *t["conv1.weight"].shape[2:]
        )
        self.b1 = t["conv1.bias"].reshape(-1)
        # conv weights kept channels-last like the activations: oneDNN would otherwise
        # reorder them at every call (3 copies per step, measured)
        self.W2 = (
            t["conv2.weight"]
            .reshape(R * t["conv2.weight"].shape[1], *t["conv2.weight"].shape[2:])
            .contiguous(memory_format=self.mf)
        )
        self.b2 = t["conv2.bias"].reshape(-1)
        self.W3, self.b3 = t["fc1.weight"], t["fc1.bias"].unsqueeze(1)
        self.W4, self.b4 = t["fc2.weight"], t["fc2.bias"].unsqueeze(1)
        self.W5, self.b5 = t["fc3.weight"], t["fc3.bias"].unsqueeze(1)

    def state(self) -> dict[str, torch.Tensor]:
        """{name: (R, *shape)} the parameters (views, or copies for channels-last ones)."""
        R, shapes = self.R, self.spec.param_shapes()
        flat = [
            self.W1,
            self.b1,
            self.W2,
            self.b2,
            self.W3,
            self.b3,
            self.W4,
            self.b4,
            self.W5,
            self.b5,
        ]
        return {n: v.reshape(R, *shapes[n]) for n, v in zip(PARAM_NAMES, flat, strict=True)}

    def batch(self, x_train: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The step input: trial r's B images in channels [r·C, (r+1)·C), (B, R·C, H, W).

        Args:
            x_train: (N, C, H, W). idx: (R, B) sample indices of the block's trials.
        """
        R, B = idx.shape
        C, H = self.spec.in_channels, self.spec.image_size
        return x_train[idx.T.reshape(-1)].view(B, R * C, H, H)

    def trial_params(self, r: int) -> dict[str, torch.Tensor]:
        """Copies of trial r's parameters."""
        return {n: v[r].clone() for n, v in self.state().items()}

    def step(
        self, x: torch.Tensor, y: torch.Tensor, lr: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step of every trial on its own mini-batch.

        Args:
            x: (B, R·C, H, W) images, trial r's in channels [r·C, (r+1)·C).
            y: (R, B) labels.
            lr: step size.

        Returns:
            logits (R, B, K) before the update and per-sample losses (R, B).
        """
        R = self.R
        B = x.shape[0]
        w1, w2 = self.spec.widths[:2]
        # forward; ReLU after max-pool equals max-pool after ReLU (monotone), on 4× fewer
        # elements, and routes gradients to the same elements (a ReLU-killed max has
        # zero gradient either way)
        # the conv/pool stages run in channels-last layout: at these shapes PyTorch's NCHW
        # CPU max-pool is 20-30x slower and the oneDNN convolutions ~2x slower (measured)
        x = x.contiguous(memory_format=self.mf)
        a1 = F.conv2d(x, self.W1, self.b1, groups=R)  # (B, R·w1, 28, 28)
        p1, i1 = aten.max_pool2d_with_indices(a1, [2, 2], [2, 2])
        r1 = torch.relu(p1)  # (B, R·w1, 14, 14)
        a2 = F.conv2d(r1, self.W2, self.b2, groups=R)  # (B, R·w2, 10, 10)
        p2, i2 = aten.max_pool2d_with_indices(a2, [2, 2], [2, 2])
        r2 = torch.relu(p2).contiguous()  # (B, R·w2, 5, 5), NCHW for the FC layers
        f = r2.view(B, R, -1).transpose(0, 1)  # (R, B, 400)
        h3 = torch.relu(torch.baddbmm(self.b3, f, self.W3.transpose(1, 2)))  # (R, B, 120)
        h4 = torch.relu(torch.baddbmm(self.b4, h3, self.W4.transpose(1, 2)))  # (R, B, 84)
        z = torch.baddbmm(self.b5, h4, self.W5.transpose(1, 2))  # (R, B, K)
        logp = torch.log_softmax(z, -1)
        yi = y.unsqueeze(-1)  # (R, B, 1)
        loss = -logp.gather(-1, yi).squeeze(-1)  # (R, B)
        # backward of mean cross-entropy: (softmax − onehot) / B
        g5 = logp.exp()
        g5.scatter_add_(-1, yi, torch.full_like(yi, -1.0, dtype=g5.dtype))
        if B > 1:
            g5.div_(B)
        # SGD on the FC weights right after each one's last read (W ← W − lr·gᵀh, fused
        # into the gradient product), while W is still in cache (9.6 MB for 50 trials' fc1)
        g4 = aten.threshold_backward(torch.bmm(g5, self.W5), h4, 0)  # (R, B, 84)
        self._fc_update(self.W5, g5, h4, lr)
        g3 = aten.threshold_backward(torch.bmm(g4, self.W4), h3, 0)  # (R, B, 120)
        self._fc_update(self.W4, g4, h3, lr)
        gf = torch.bmm(g3, self.W3)  # (R, B, 400)
        self._fc_update(self.W3, g3, f, lr)
        gp2 = aten.threshold_backward(gf.transpose(0, 1).reshape(r2.shape), r2, 0)
        ga2 = aten.max_pool2d_with_indices_backward(
            gp2.contiguous(memory_format=self.mf), a2, [2, 2], [2, 2], [0, 0], [1, 1], False, i2
        )
        gr1, gW2, gb2 = aten.convolution_backward(
            ga2,
            r1,
            self.W2,
            [R * w2],
            [1, 1],
            [0, 0],
            [1, 1],
            False,
            [0, 0],
            R,
            [True, True, True],
        )
        gp1 = aten.threshold_backward(gr1.contiguous(memory_format=self.mf), r1, 0)
        ga1 = aten.max_pool2d_with_indices_backward(
            gp1, a1, [2, 2], [2, 2], [0, 0], [1, 1], False, i1
        )
        _, gW1, gb1 = aten.convolution_backward(
            ga1,
            x,
            self.W1,
            [R * w1],
            [1, 1],
            [0, 0],
            [1, 1],
            False,
            [0, 0],
            R,
            [False, True, True],
        )
        torch._foreach_add_(
            [self.W1, self.b1, self.W2, self.b2, self.b3, self.b4, self.b5],
            [
                gW1,
                gb1,
                gW2,
                gb2,
                g3.sum(1, keepdim=True),
                g4.sum(1, keepdim=True),
                g5.sum(1, keepdim=True),
            ],
            alpha=-lr,
        )
        return z, loss

    def run_steps(
        self, x_train: torch.Tensor, idx: torch.Tensor, y: torch.Tensor, lr: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """L SGD steps of every trial, trial r's samples ``idx[r, i]`` at step i.

        Args:
            x_train: (N, C, H, W) training images.
            idx, y: (R, L, B) sample indices and their labels.
            lr: step size.

        Returns:
            logits (L, R, B, K) before each update and per-sample losses (L, R, B).
        """
        return step_by_step(self, x_train, idx, y, lr)

    @staticmethod
    def _fc_update(W: torch.Tensor, g: torch.Tensor, h: torch.Tensor, lr: float) -> None:
        """W ← W − lr · gᵀh for W (R, n_out, n_in), g (R, B, n_out), h (R, B, n_in)."""
        if g.shape[1] == 1:
            # rank-1 gradient: the outer-product update reads and writes W once and is
            # ~40% faster than the K=1 matmul (measured)
            W.addcmul_(g.transpose(1, 2), h, value=-lr)
        else:
            W.baddbmm_(g.transpose(1, 2), h, alpha=-lr)

    @torch.no_grad()
    def forward_shared(
        self, x: torch.Tensor, *, max_elements: int = 1 << 20
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every trial's logits and penultimate features on the same images.

        Args:
            x: (N, C, H, W) images.
            max_elements: bound on the conv1 activation size per block of images.

        Returns:
            logits (R, N, K) and features (R, N, w4).
        """
        R = self.R
        w1 = self.spec.widths[0]
        per = R * w1 * self.spec.conv1_size**2
        n_block = max(1, max_elements // per)
        # oneDNN takes ~15x longer with NCHW weights on channels-last input (measured: 5 s
        # instead of 0.3 s for 100 trials on 396 images): a copy where the kernel keeps W2 NCHW
        W2 = self.W2.contiguous(memory_format=self.mf)
        flat = []
        for s in range(0, x.shape[0], n_block):
            xb = x[s : s + n_block]
            n, S1 = xb.shape[0], self.spec.conv1_size
            # conv1 of every trial on the same images is one GEMM, (n·28·28, C·25) @
            # (C·25, R·w1), whose result is already the channels-last (n, R·w1, 28, 28)
            cols = F.unfold(xb, KERNEL).transpose(1, 2)  # (n, 784, C·25)
            a1 = torch.addmm(self.b1, cols.reshape(n * S1 * S1, -1), self.W1.view(R * w1, -1).T)
            a1 = a1.view(n, S1, S1, R * w1).permute(0, 3, 1, 2)  # CL-strided (n, R·w1, 28, 28)
            r1 = torch.relu(F.max_pool2d(a1, 2))
            a2 = F.conv2d(r1, W2, self.b2, groups=R)
            flat.append(torch.relu(F.max_pool2d(a2, 2)).contiguous().reshape(xb.shape[0], R, -1))
        # FC layers once for all images: each trial's weights are read once, not per block
        f = torch.cat(flat, 0).transpose(0, 1)  # (R, N, 400)
        h3 = torch.relu(torch.baddbmm(self.b3, f, self.W3.transpose(1, 2)))
        h4 = torch.relu(torch.baddbmm(self.b4, h3, self.W4.transpose(1, 2)))
        return torch.baddbmm(self.b5, h4, self.W5.transpose(1, 2)), h4


# ------------------------------------------------------------------ compiled step

_CHECKED: dict[tuple, object] = {}  # (spec, dtype) -> the checked kernel, or None


def _dims(spec: CNNSpec) -> dict[str, int]:
    w1, w2, w3, w4 = spec.widths
    return {"CIN": spec.in_channels, "S0": spec.image_size, "N1": w1, "N2": w2, "N3": w3,
            "N4": w4, "NK": spec.n_classes}  # fmt: skip


def _kernel_for(spec: CNNSpec, dtype: torch.dtype):
    """The compiled step of ``spec`` in ``dtype``, checked once per process against
    `BatchedCNN` on random inputs; None (with a warning) when it cannot be built or
    disagrees."""
    from lesde.train.engine_fast import build_kernel, kernel_disabled

    if kernel_disabled() or dtype not in (torch.float32, torch.float64):
        return None
    key = (spec, dtype)
    if key not in _CHECKED:
        kernel = build_kernel(_dims(spec), dtype)
        if kernel is not None:
            err = _check(spec, dtype, kernel)
            tol = kernel_tolerance(dtype)
            if not err <= tol:
                warnings.warn(
                    f"the compiled CNN step disagrees with the torch engine on its check "
                    f"inputs (relative error {err:.2e} > {tol:g}); training uses the "
                    "previous torch engine (~5x slower)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                kernel = None
        _CHECKED[key] = kernel
    return _CHECKED[key]


def kernel_tolerance(dtype: torch.dtype) -> float:
    """The relative error a compiled result may have from its reference on the check
    inputs: float64, the same sums in other orders (observed ~1e-15); float32, ~1e-6
    after a few steps."""
    return 1e-10 if dtype == torch.float64 else 1e-4


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b| / max |b| (inf when the shapes differ or ``a`` is not finite): how far
    a compiled result is from its reference."""
    if a.shape != b.shape or not bool(torch.isfinite(a).all()):
        return float("inf")
    return float((a - b).abs().max()) / max(float(b.abs().max()), 1e-30)


def compare_engines(spec: CNNSpec, dtype: torch.dtype, kernel, reference, names=PARAM_NAMES):
    """How far the compiled step of ``kernel`` is from a reference engine on check inputs.

    3 trials from random parameters; a step, then 3 steps in one call, at B = 1 and at
    B = 2 on 6 random images; then the evaluation forward on those images.

    Args:
        reference: builds the reference engine from per-trial {name: tensor} dicts.
        names: the reference's parameter names, in `PARAM_NAMES` order.

    Returns:
        (the largest relative difference of logits, losses, parameters and evaluation
        logits; that of the evaluation features).
    """
    from lesde.train.nets import init_params

    gen = torch.Generator().manual_seed(0)
    params = [init_params(spec, gen, dtype=dtype) for _ in range(3)]
    cpu = torch.device("cpu")
    fast = EnsembleCNN(spec, params, device=cpu, dtype=dtype, kernel=kernel)
    ref = reference([{n: p[m] for n, m in zip(names, PARAM_NAMES, strict=True)} for p in params])
    C, H = spec.in_channels, spec.image_size
    x_all = torch.randn((6, C, H, H), generator=gen, dtype=dtype)
    worst = 0.0
    for B in (1, 2):
        idx = torch.randint(0, 6, (3, 4, B), generator=gen)
        y = torch.randint(0, spec.n_classes, (3, 4, B), generator=gen)
        outs = [(*e.step(e.batch(x_all, idx[:, 0]), y[:, 0], 0.05),
                 *e.run_steps(x_all, idx[:, 1:], y[:, 1:], 0.05)) for e in (fast, ref)]  # fmt: skip
        pairs = list(zip(*outs, strict=True))
        pairs += [
            (fast.state()[m], ref.state()[n]) for n, m in zip(names, PARAM_NAMES, strict=True)
        ]
        worst = max(worst, *(rel_error(a, b) for a, b in pairs))
    (za, ha), (zb, hb) = fast.forward_shared(x_all), ref.forward_shared(x_all)
    return max(worst, rel_error(za, zb)), rel_error(ha, hb)


def _check(spec: CNNSpec, dtype: torch.dtype, kernel) -> float:
    """Largest relative difference of the compiled step and evaluation forward of
    ``kernel`` from `BatchedCNN`'s (`compare_engines`)."""

    def reference(params):
        return BatchedCNN(spec, params, device=torch.device("cpu"), dtype=dtype)

    return max(*compare_engines(spec, dtype, kernel, reference))


class EnsembleCNN(BatchedCNN):
    """R CNNs stored stacked, each SGD step one call of a compiled C kernel on the CPU.

    The kernel (`lesde.train.kernel_src`, built by `lesde.train.engine_fast`) runs each
    trial's whole step in turn, its parameters cache-resident between forward and
    backward. It is checked once per process against `BatchedCNN`; without a C compiler,
    when that check fails, on other devices, or with ``LESDE_CNN_KERNEL=off``, the steps
    and the evaluations are `BatchedCNN`'s (with a warning in the first two cases). The
    evaluations (`forward_shared`) are the kernel's second function; the input layout
    (`batch`) is `BatchedCNN`'s.

    Args:
        spec, params, device, dtype: as `BatchedCNN`.
        kernel: use this kernel unchecked (the check itself); default: `_kernel_for`.
    """

    def __init__(
        self,
        spec: CNNSpec,
        params: list[dict[str, torch.Tensor]],
        *,
        device: torch.device,
        dtype: torch.dtype,
        kernel=None,
    ) -> None:
        if kernel is None and torch.device(device).type == "cpu":
            kernel = _kernel_for(spec, dtype)
        self.kernel = kernel
        self._scratch: dict[int, tuple[torch.Tensor, ...]] = {}
        self._fscratch: tuple[torch.Tensor, torch.Tensor] | None = None
        super().__init__(spec, params, device=device, dtype=dtype)

    def load_state(self, stacked: dict[str, torch.Tensor]) -> None:
        """Set the parameters from {name: (R, *shape)} tensors."""
        super().load_state(stacked)
        if self.kernel is not None:
            # the kernel reads each trial's conv2 weights row-major
            self.W2 = self.W2.contiguous()

    def step(
        self, x: torch.Tensor, y: torch.Tensor, lr: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step of every trial on its own mini-batch (as `BatchedCNN.step`)."""
        if self.kernel is None:
            return super().step(x, y, lr)
        R, B = y.shape
        C, H = self.spec.in_channels, self.spec.image_size
        # (B, R·C, H, W) -> trial-major (R, B, C, H, W); a view for B = 1
        return self.step_trials(x.view(B, R, C, H, H).transpose(0, 1), y, lr)

    def step_trials(
        self, x: torch.Tensor, y: torch.Tensor, lr: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`step` on trial-major inputs x (R, B, C, H, W) (the "func" backend's layout)."""
        R, B = y.shape
        if self.kernel is None:
            return super().step(x.transpose(0, 1).reshape(B, -1, *x.shape[3:]), y, lr)
        K = self.spec.n_classes
        x = x.to(self.dtype).contiguous()
        y = y.to(torch.int64).contiguous()
        z = torch.empty((R, B, K), dtype=self.dtype)
        loss = torch.empty((R, B), dtype=self.dtype)
        self.kernel.step(x, y, lr, self._params(), z, loss, self._buffers(B))
        return z, loss

    def run_steps(
        self, x_train: torch.Tensor, idx: torch.Tensor, y: torch.Tensor, lr: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """L SGD steps of every trial (as `BatchedCNN.run_steps`) in one kernel call.

        Each trial makes its L steps before the next one starts: its parameters are read
        from memory once, not L times (at 50 trials per block they do not fit in the
        cache; ~25 % of a step's time went to re-reading fc1's weights, measured).
        """
        if self.kernel is None:
            return super().run_steps(x_train, idx, y, lr)
        R, L, B = idx.shape
        K = self.spec.n_classes
        x_train = x_train.to(self.dtype).contiguous()
        idx = idx.to(torch.int64).contiguous()
        y = y.to(torch.int64).contiguous()
        z = torch.empty((L, R, B, K), dtype=self.dtype)
        loss = torch.empty((L, R, B), dtype=self.dtype)
        self.kernel.steps(x_train, idx, y, lr, self._params(), z, loss, self._buffers(B))
        return z, loss

    @torch.no_grad()
    def forward_shared(
        self, x: torch.Tensor, *, max_elements: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every trial's logits (R, N, K) and penultimate features (R, N, w4) on the same
        images x (N, C, H, W), as `BatchedCNN.forward_shared`.

        With the kernel, one call (`lesde.train.kernel_eval_src`): each trial's images in
        turn, its weights cache-resident; the same sums as the torch forward in another
        order (float64: ~1e-15 apart).

        Raises:
            ValueError: ``max_elements`` (the torch forward's block bound) with the kernel,
                which has no such bound.
        """
        if self.kernel is None:
            kw = {} if max_elements is None else {"max_elements": max_elements}
            return super().forward_shared(x, **kw)
        if max_elements is not None:
            raise ValueError(f"`max_elements` bounds the torch forward's blocks; the compiled "
                             f"forward has none (got {max_elements})")  # fmt: skip
        N = x.shape[0]
        x = x.to(self.dtype).contiguous()
        z = torch.empty((self.R, N, self.spec.n_classes), dtype=self.dtype)
        feat = torch.empty((self.R, N, self.spec.widths[3]), dtype=self.dtype)
        if N:
            if self._fscratch is None:
                self._fscratch = self.kernel.forward_scratch()
            self.kernel.forward(x, self._params(), z, feat, self._fscratch)
        return z, feat

    def _params(self) -> list[torch.Tensor]:
        return [self.W1, self.b1, self.W2, self.b2, self.W3, self.b3, self.W4, self.b4,
                self.W5, self.b5]  # fmt: skip

    def _buffers(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        if batch_size not in self._scratch:
            self._scratch[batch_size] = self.kernel.scratch(batch_size)
        return self._scratch[batch_size]
