"""The compiled CNN step's C source under AddressSanitizer and UndefinedBehaviorSanitizer.

The step reads vectors past row ends and at shifted offsets (conv1's rows, the col2im's
shifted loads, the pool's row pairs) inside padded work buffers carved from one scratch
allocation (the source's ``STEP_BUFFERS`` / ``FWD_BUFFERS`` lists). ASan sees only the
edges of a whole allocation, so the test build defines the lists' guard hooks
(``BUFFER_GUARD``, ``GUARD_AFTER``): a poisoned 64-byte guard after every buffer, counted
in the allocation's size. A read or write past any one buffer, or undefined behaviour,
aborts the program. Shapes: the paper's, and others whose planes and rows give odd vector
counts (image sides 16, 21, 40), in float32 and float64, batch sizes 1-3, the step, the
L-step call and the evaluation forward.
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
#define BUFFER_GUARD (64 / (int)sizeof(T))
#define IBUFFER_GUARD 16
#define GUARD_AFTER(p) (__asan_poison_memory_region((p), 64), (p) += 64 / sizeof(*(p)))
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
        T *sc = malloc(sizeof(T) * lesde_scratch(B));
        T *xs = calloc(lesde_xscratch(B), sizeof(T));
        int32_t *si = malloc(4 * lesde_iscratch(B));
        lesde_cnn_steps(R, L, B, xt, idx, y, 0.01, p[0], p[1], p[2], p[3], p[4], p[5], p[6],
                        p[7], p[8], p[9], z, loss, sc, si, xs);
        lesde_cnn_step(R, B, xb, y, 0.01, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8],
                       p[9], z, loss, sc, si, xs);
        T *fz = malloc(sizeof(T) * R * NIMG * NK), *ff = malloc(sizeof(T) * R * NIMG * N4);
        T *fsc = malloc(sizeof(T) * lesde_fscratch());
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

SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def _cc() -> str:
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler {cc!r}: the compiled step is not built here")
    return cc


PAPER = dict(CIN=1, S0=32, N1=6, N2=16, N3=120, N4=84, NK=3)


def _run_sanitized(tmp_path, source: str, ctype: str, dims: dict) -> subprocess.CompletedProcess:
    cc = _cc()
    (tmp_path / "step.c").write_text(source)
    (tmp_path / "main.c").write_text(HARNESS)
    exe = tmp_path / "san"
    defines = [f"-DT={ctype}"] + [f"-D{k}={v}" for k, v in dims.items()]
    cmd = [cc, "-O1", "-g", "-march=native", "-std=c11", "-ffp-contract=fast", *SAN, *defines,
           str(tmp_path / "main.c"), "-o", str(exe), "-lm"]  # fmt: skip
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if built.returncode != 0 and "asan" in built.stderr.lower() and "cannot find" in built.stderr:
        pytest.skip(f"{cc} cannot link AddressSanitizer here: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr[-3000:]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="print_stacktrace=1")
    return subprocess.run([str(exe)], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    ("ctype", "dims"),
    [
        ("float", PAPER),
        ("double", dict(CIN=2, S0=40, N1=5, N2=7, N3=30, N4=11, NK=4)),
        ("float", dict(CIN=3, S0=21, N1=4, N2=8, N3=20, N4=12, NK=10)),
        ("double", dict(CIN=1, S0=16, N1=3, N2=20, N3=10, N4=7, NK=2)),
    ],
)
def test_step_and_forward_stay_inside_their_buffers(tmp_path, ctype, dims):
    ran = _run_sanitized(tmp_path, SOURCE, ctype, dims)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.split() == ["B=1", "ok", "B=2", "ok", "B=3", "ok"]
    assert "runtime error" not in ran.stderr, ran.stderr[-3000:]


def test_the_guards_catch_a_read_past_one_buffer(tmp_path):
    # the col2im's shifted loads read up to 2 padded rows past its buffer's positions:
    # without that padding they run into the guard before the next buffer (inside the
    # one allocation, where ASan alone would see nothing)
    padded = "X(rows, S2 * KP + 3 * P1P)"
    assert SOURCE.count(padded) == 1
    ran = _run_sanitized(tmp_path, SOURCE.replace(padded, "X(rows, S2 * KP)"), "float", PAPER)
    assert ran.returncode != 0 and "AddressSanitizer" in ran.stderr, ran.stderr[-3000:]


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
