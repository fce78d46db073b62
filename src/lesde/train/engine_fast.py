"""Building and loading the compiled CNN step (`lesde.train.kernel_src`) on the CPU.

The C source is compiled once per network shape, dtype and CPU (``-O3 -march=native``)
by the system's C compiler (``$CC``, default ``gcc``) into a shared library cached under
``$LESDE_CACHE_DIR`` (default ``~/.cache/lesde/kernels``, else the temp directory), and
called through ``ctypes``: a foreign call releases the GIL, so the loop's thread blocks
run their steps in parallel, and it costs a few µs instead of ~40 ATen dispatches.

Anything that stops the build (no compiler, a failed compile, an unwritable cache)
returns None with a warning; `lesde.train.engine_cnn.EnsembleCNN` then uses the previous
torch engine. ``LESDE_CNN_KERNEL=off`` skips the kernel without a warning.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch

from lesde.train.kernel_src import SOURCE

__all__ = ["Kernel", "build_kernel", "kernel_disabled"]

# -ffp-contract=fast: a·b + c as one fused multiply-add (one rounding instead of two; ISO
# C mode would forbid it); no -ffast-math: IEEE arithmetic, sums in the written order
_FLAGS = ("-O3", "-march=native", "-std=c11", "-ffp-contract=fast", "-fPIC", "-shared",
          "-fno-math-errno")  # fmt: skip
_LOCK = threading.Lock()
_BUILT: dict[tuple, Kernel | None] = {}


def kernel_disabled() -> bool:
    """Whether ``LESDE_CNN_KERNEL=off`` (or 0 / false / no) asks for the torch engine."""
    return os.environ.get("LESDE_CNN_KERNEL", "").strip().lower() in ("off", "0", "false", "no")


class Kernel:
    """The compiled step of one network shape and dtype.

    Args:
        path: the shared library.
        dtype: torch.float32 or torch.float64, the library's ``T``.
    """

    def __init__(self, path: Path, dtype: torch.dtype) -> None:
        self.path, self.dtype = path, dtype
        lib = ctypes.CDLL(str(path))
        vp = ctypes.c_void_p
        self._step = lib.lesde_cnn_step
        self._step.argtypes = [ctypes.c_int, ctypes.c_int, vp, vp, ctypes.c_double, *[vp] * 15]
        self._step.restype = None
        self._steps = lib.lesde_cnn_steps
        self._steps.argtypes = [*[ctypes.c_int] * 3, vp, vp, vp, ctypes.c_double, *[vp] * 15]
        self._steps.restype = None
        self._scratch = (lib.lesde_scratch, lib.lesde_iscratch, lib.lesde_xscratch)
        for f in self._scratch:
            f.argtypes, f.restype = [ctypes.c_int], ctypes.c_long
        self._forward = lib.lesde_cnn_forward
        self._forward.argtypes = [ctypes.c_int, ctypes.c_int, *[vp] * 15]
        self._forward.restype = None
        self._fscratch = (lib.lesde_fscratch, lib.lesde_fiscratch)
        for f in self._fscratch:
            f.argtypes, f.restype = [], ctypes.c_long

    def scratch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Work buffers of one call for mini-batches of ``batch_size`` (reused by trials)."""
        n, m, k = (int(f(batch_size)) for f in self._scratch)
        # the image buffer's padding is read (and multiplied by 0): it must be finite
        return (torch.empty(n, dtype=self.dtype), torch.empty(m, dtype=torch.int32),
                torch.zeros(k, dtype=self.dtype))  # fmt: skip

    def forward_scratch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Work buffers of one `forward` call (any number of trials and images)."""
        n, m = (int(f()) for f in self._fscratch)
        return torch.empty(n, dtype=self.dtype), torch.empty(m, dtype=torch.int32)

    def forward(
        self,
        x: torch.Tensor,
        params: list[torch.Tensor],
        z: torch.Tensor,
        feat: torch.Tensor,
        scratch: tuple[torch.Tensor, torch.Tensor],
    ) -> None:
        """Every trial's logits and penultimate features on the same images (no update).

        Args:
            x: (N, C, H, W) images, contiguous. params: as `step`.
            z, feat: outputs, (R, N, K) logits and (R, N, w4) features.
            scratch: `forward_scratch()`.
        """
        R, N = z.shape[:2]
        ptrs = [t.data_ptr() for t in (*params, z, feat, *scratch)]
        self._forward(R, N, x.data_ptr(), *ptrs)

    def step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        lr: float,
        params: list[torch.Tensor],
        z: torch.Tensor,
        loss: torch.Tensor,
        scratch: tuple[torch.Tensor, ...],
    ) -> None:
        """One SGD step of R trials in place (every tensor contiguous, on the CPU).

        Args:
            x: (R, B, C, H, W) images. y: (R, B) int64 labels. lr: step size.
            params: the 10 parameter tensors, (R, *shape) each, in `PARAM_NAMES` order.
            z, loss: outputs, (R, B, K) logits before the update and (R, B) losses.
            scratch: `scratch(B)`.
        """
        R, B = y.shape
        ptrs = [t.data_ptr() for t in (*params, z, loss, *scratch)]
        self._step(R, B, x.data_ptr(), y.data_ptr(), float(lr), *ptrs)

    def steps(
        self,
        x_train: torch.Tensor,
        idx: torch.Tensor,
        y: torch.Tensor,
        lr: float,
        params: list[torch.Tensor],
        z: torch.Tensor,
        loss: torch.Tensor,
        scratch: tuple[torch.Tensor, ...],
    ) -> None:
        """L SGD steps of R trials in place, each trial's L steps in turn.

        Args:
            x_train: (N, C, H, W) training images. idx, y: (R, L, B) int64 sample
                indices and labels. lr, params, scratch: as `step`.
            z, loss: outputs, (L, R, B, K) and (L, R, B).
        """
        R, L, B = idx.shape
        ptrs = [t.data_ptr() for t in (*params, z, loss, *scratch)]
        self._steps(R, L, B, x_train.data_ptr(), idx.data_ptr(), y.data_ptr(), float(lr), *ptrs)


def _cache_dir() -> Path:
    env = os.environ.get("LESDE_CACHE_DIR")
    base = Path(env) if env else Path.home() / ".cache" / "lesde"
    return base / "kernels"


def _cpu_fingerprint() -> str:
    """What ``-march=native`` compiles for: a library built on another CPU is not reused."""
    text = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "model name", "Features", "CPU part")):
                    text += line
                if line.strip() == "":
                    break
    except OSError:
        pass
    return text


def _compile(defines: list[str], dest: Path) -> None:
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise RuntimeError(f"no C compiler {cc!r} on PATH")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        src = Path(tmp) / "cnn_step.c"
        src.write_text(SOURCE)
        out = Path(tmp) / dest.name
        cmd = [cc, *_FLAGS, *defines, str(src), "-o", str(out), "-lm"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
        os.replace(out, dest)  # atomic: concurrent builders never load a partial file


def build_kernel(dims: dict[str, int], dtype: torch.dtype) -> Kernel | None:
    """The compiled step for these network dimensions and dtype, built on first use.

    Args:
        dims: {"CIN", "S0", "N1", "N2", "N3", "N4", "NK"}: input channels, image side,
            the four widths and the number of classes.
        dtype: torch.float32 or torch.float64.

    Returns:
        The kernel, or None (with a warning) when it cannot be built or loaded.
    """
    ctype = {torch.float32: "float", torch.float64: "double"}[dtype]
    defines = [f"-DT={ctype}"] + [f"-D{k}={int(v)}" for k, v in sorted(dims.items())]
    key = (tuple(defines),)
    with _LOCK:
        if key in _BUILT:
            return _BUILT[key]
        digest = hashlib.sha256(
            "\0".join(
                [SOURCE, *_FLAGS, *defines, os.environ.get("CC", "gcc"), _cpu_fingerprint()]
            ).encode()  # fmt: skip
        ).hexdigest()[:20]
        kernel = None
        err: Exception | None = None
        for base in (_cache_dir(), Path(tempfile.gettempdir()) / "lesde-kernels"):
            path = base / f"cnn_step_{digest}.so"
            try:
                if not path.exists():
                    _compile(defines, path)
                kernel = Kernel(path, dtype)
                break
            except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                err = e
        if kernel is None:
            warnings.warn(
                f"the compiled CNN step could not be built ({err}); training uses the "
                "previous torch engine (~5x slower)",
                RuntimeWarning,
                stacklevel=3,
            )
        _BUILT[key] = kernel
        return kernel
