"""The compiled CNN step's C source under AddressSanitizer and UndefinedBehaviorSanitizer.

The step reads vectors past row ends and at shifted offsets (conv1's rows, the col2im's
shifted loads, the pool's row pairs) inside padded work buffers carved from one scratch
allocation whose size ``lesde_scratch`` & co. compute. ASan sees only the edges of a whole
allocation, so the test build puts a poisoned 64-byte guard after every carved buffer
(`guarded`; the allocations grow by exactly the guards): a read or write past any one
buffer, or past the whole, or undefined behaviour, aborts the program. Shapes: the
paper's, and others whose planes and rows give odd vector counts (image sides 16, 21,
40), in float32 and float64, batch sizes 1-3, the step, the L-step call and the evaluation
forward.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from lesde.train.kernel_src import SOURCE

HARNESS = r"""
#include <stddef.h>
void __asan_poison_memory_region(void const volatile *addr, size_t size);
#define GUARD(p) (__asan_poison_memory_region((p), 64), (p) += 64 / sizeof(*(p)))
#include <stdio.h>
#include <stdlib.h>
#include "step.c"
static T rnd(void) { return (T)((rand() % 2001) - 1000) / 1000; }
int main(void) {
    const int R = 3, L = 5, NIMG = 9;
    const size_t img = (size_t)CIN * S0 * S0;
    const size_t sz[] = {N1 * KK1, N1, N2 * KK2, N2, N3 * NF, N3, N4 * N3, N4, NK * N4, NK};
    for (int B = 1; B <= 3; B++) {
        T *xt = malloc(sizeof(T) * img * NIMG), *xb = malloc(sizeof(T) * img * R * B);
        for (size_t i = 0; i < img * NIMG; i++) xt[i] = rnd();
        for (size_t i = 0; i < img * R * B; i++) xb[i] = rnd();
        int64_t *idx = malloc(8 * R * L * B), *y = malloc(8 * R * L * B);
        for (int i = 0; i < R * L * B; i++) { idx[i] = rand() % NIMG; y[i] = rand() % NK; }
        T *p[10];
        for (int k = 0; k < 10; k++) {
            p[k] = malloc(sizeof(T) * sz[k] * R);
            for (size_t i = 0; i < sz[k] * R; i++) p[k][i] = rnd() / 3;
        }
        T *z = malloc(sizeof(T) * R * L * B * NK), *loss = malloc(sizeof(T) * R * L * B);
        T *sc = malloc(sizeof(T) * lesde_scratch(B) + 64 * NGS);
        T *xs = calloc(lesde_xscratch(B), sizeof(T));
        int32_t *si = malloc(4 * lesde_iscratch(B) + 64 * NGI);
        lesde_cnn_steps(R, L, B, xt, idx, y, 0.01, p[0], p[1], p[2], p[3], p[4], p[5], p[6],
                        p[7], p[8], p[9], z, loss, sc, si, xs);
        lesde_cnn_step(R, B, xb, y, 0.01, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8],
                       p[9], z, loss, sc, si, xs);
        T *fz = malloc(sizeof(T) * R * NIMG * NK), *ff = malloc(sizeof(T) * R * NIMG * N4);
        T *fsc = malloc(sizeof(T) * lesde_fscratch() + 64 * NGF);
        int32_t *fsi = malloc(4 * lesde_fiscratch());
        lesde_cnn_forward(R, NIMG, xt, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8],
                          p[9], fz, ff, fsc, fsi);
        printf("B=%d ok\n", B);
        free(xt); free(xb); free(idx); free(y); free(z); free(loss); free(sc); free(xs);
        free(si); free(fz); free(ff); free(fsc); free(fsi);
        for (int k = 0; k < 10; k++) free(p[k]);
    }
    return 0;
}
"""

_CARVE = re.compile(r"^(    (?:T|int32_t) \*\w+ = (sc|si);\s+\2 \+= [^;]+;)$", re.M)


def guarded(source: str) -> tuple[str, dict[str, int]]:
    """The source with ``GUARD(sc)`` / ``GUARD(si)`` after every carved work buffer, and
    the number of guards per allocation (NGS, NGI: the step's; NGF: the forward's)."""
    cut = source.index("void lesde_cnn_forward(")
    step, fwd = source[:cut], source[cut:]
    counts = {"NGS": len(re.findall(_CARVE.pattern.replace("(sc|si)", "(sc)"), step, re.M)),
              "NGI": len(re.findall(_CARVE.pattern.replace("(sc|si)", "(si)"), step, re.M)),
              "NGF": len(_CARVE.findall(fwd))}  # fmt: skip
    return _CARVE.sub(r"\1 GUARD(\2);", step) + _CARVE.sub(r"\1 GUARD(\2);", fwd), counts


SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def _cc() -> str:
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler {cc!r}: the compiled step is not built here")
    return cc


@pytest.mark.parametrize(
    ("ctype", "dims"),
    [
        ("float", dict(CIN=1, S0=32, N1=6, N2=16, N3=120, N4=84, NK=3)),  # the paper's
        ("double", dict(CIN=2, S0=40, N1=5, N2=7, N3=30, N4=11, NK=4)),
        ("float", dict(CIN=3, S0=21, N1=4, N2=8, N3=20, N4=12, NK=10)),
        ("double", dict(CIN=1, S0=16, N1=3, N2=20, N3=10, N4=7, NK=2)),
    ],
)
def test_step_and_forward_stay_inside_their_buffers(tmp_path, ctype, dims):
    cc = _cc()
    source, guards = guarded(SOURCE)
    # every buffer of the step's two allocations and of the forward's one is guarded
    assert guards["NGS"] >= 20 and guards["NGI"] >= 3 and guards["NGF"] >= 14, guards
    (tmp_path / "step.c").write_text(source)
    (tmp_path / "main.c").write_text(HARNESS)
    exe = tmp_path / "san"
    defines = [f"-DT={ctype}"] + [f"-D{k}={v}" for k, v in {**dims, **guards}.items()]
    cmd = [cc, "-O1", "-g", "-march=native", "-std=c11", "-ffp-contract=fast", *SAN, *defines,
           str(tmp_path / "main.c"), "-o", str(exe), "-lm"]  # fmt: skip
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if built.returncode != 0 and "asan" in built.stderr.lower() and "cannot find" in built.stderr:
        pytest.skip(f"{cc} cannot link AddressSanitizer here: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr[-3000:]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="print_stacktrace=1")
    ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120, env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.split() == ["B=1", "ok", "B=2", "ok", "B=3", "ok"]
    assert "runtime error" not in ran.stderr, ran.stderr[-3000:]


def test_phase_profile_anchors_are_in_the_step():
    # bench/bench_kernel_phases.py times the step between text anchors in its source: each
    # must occur once, so that an edit of the step that moves one is seen here, not in a
    # benchmark nobody runs
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_kernel_phases.py"
    spec = importlib.util.spec_from_file_location("bench_kernel_phases", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = mod.instrumented(SOURCE)
    assert [int(n) for n in re.findall(r"PM\((\d+)\);", text)] == list(range(len(mod.PHASES) + 1))
    with pytest.raises(RuntimeError, match="anchor occurs 0 times"):
        mod.instrumented(SOURCE.replace("    /* cross-entropy and its gradient", "    /* CE"))
