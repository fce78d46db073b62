"""Where the compiled CNN step's time goes, phase by phase (x86: the time-stamp counter).

Builds two copies of the step's C source (`lesde.train.kernel_src`) as stand-alone
programs with the flags of `lesde.train.engine_fast`: one as it ships, one with a read
of the time-stamp counter (``__rdtsc``) between its phases (conv1, its pool, im2col,
conv2's GEMM, ...; `PHASES`), each counter read ~20 cycles, ~1 % of a step. Both train
the same block of trials from the same start, so their records must be equal to the bit
(checked: the counters only read the clock).

Workload: the paper's CNN on GeoMNIST (1×32×32, K = 3), float32, batch 1, one block of
50 trials on one thread, each trial's 200 steps in turn per call (as ``run_steps``), a
first call as warm-up (the nets leave their initial state), then ``--reps`` calls timed,
the fastest kept. Reported per trial-step: the wall µs of the plain build, each phase's
counter ticks and share, and its µs at the counter's rate measured in the run (the
counter ticks at a fixed rate, not the core's clock).

Run: ``python bench/bench_kernel_phases.py [--reps 5]``; prints the table and writes
``bench/results/kernel_phases.json``. Needs gcc and an x86-64 CPU (elsewhere it says so
and writes nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from lesde.data import make_geomnist
from lesde.train import CNNSpec, TrainConfig, initial_params
from lesde.train.engine_cnn import _dims
from lesde.train.engine_fast import _FLAGS
from lesde.train.kernel_src import SOURCE

# (phase, text of the step's source it starts before): a phase runs from its anchor to
# the next one's; the anchors must each occur once (else the source moved: update them)
PHASES = [
    ("conv2 weights to GEMM layouts", "    T b2p[N2P];\n    prep_w2(cw2, cb2, w2t, w2p, b2p);\n"),
    ("conv1", "        conv1_fwd(xb, cw1, cb1, a1);\n"),
    ("conv1 max-pool + ReLU", "        for (int co = 0; co < N1; co++)\n            pool1("),
    ("conv2 im2col", "        /* im2col of conv2, one row"),
    ("conv2 GEMM", "        /* conv2 as a GEMM,"),
    ("conv2 max-pool + ReLU", "        pool2_fwd(a2, f + (size_t)b * NF, i2 + (size_t)b"),
    ("fc1 forward", "    fc_fwd(B, N3, NF, fw1, fb1, f, h3, 1);\n"),
    ("fc2, fc3 forward", "    fc_fwd(B, N4, N3, fw2, fb2, h3, h4, 1);\n"),
    ("cross-entropy", "    /* cross-entropy and its gradient"),
    ("fc3, fc2 backward + update", "    fc_back(B, NK, N4, fw3, fb3, h4, g5, g4, tmp, lr);\n"),
    ("fc1 backward + update", "    fc_back(B, N3, NF, fw1, fb1, f, g3, gf, tmp, lr);\n"),
    ("conv2 weight gradient (sparse)", "        /* conv2: only each window's maximum has"),
    ("conv2 input gradient + col2im", "        /* its input gradient a row of conv2's output"),
    ("conv1 output gradient (dense)", "        /* ReLU after pool1 and"),
    ("conv1 weight gradient", "        for (int c0 = 0; c0 < N1; c0 += C1B) {"),
    ("conv updates", "    axpy(cw1, -lr, gW1, N1 * KK1);\n"),
]
END = "    axpy(cb2, -lr, gb2, N2);\n}\n"

MAIN = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "step.c"
static void *rd(const char *f, size_t n) {
    void *p = malloc(n); FILE *F = fopen(f, "rb");
    if (!F || fread(p, 1, n, F) != n) { fprintf(stderr, "cannot read %s\n", f); exit(1); }
    fclose(F); return p;
}
int main(int argc, char **argv) {
    const int R = atoi(argv[1]), L = atoi(argv[2]), NIMG = atoi(argv[3]), reps = atoi(argv[4]);
    const size_t img = (size_t)CIN * S0 * S0;
    T *xt = rd("x.bin", sizeof(T) * img * NIMG);
    int64_t *idx = rd("idx.bin", 8 * (size_t)R * L), *y = rd("y.bin", 8 * (size_t)R * L);
    size_t sz[] = {N1 * KK1, N1, N2 * KK2, N2, N3 * NF, N3, N4 * N3, N4, NK * N4, NK};
    T *p[10]; char fn[32];
    for (int k = 0; k < 10; k++) {
        sprintf(fn, "p%d.bin", k);
        p[k] = rd(fn, sizeof(T) * sz[k] * R);
    }
    T *z = malloc(sizeof(T) * R * L * NK), *loss = malloc(sizeof(T) * R * L);
    T *sc = malloc(sizeof(T) * lesde_scratch(1) + 64);
    int32_t *si = malloc(4 * lesde_iscratch(1));
    T *xs = calloc(lesde_xscratch(1), sizeof(T));
    double best = 1e30; unsigned long long bt[32] = {0};
    for (int r = 0; r <= reps; r++) {
        for (int i = 0; i < 32; i++) prof_t[i] = 0;
        struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
        lesde_cnn_steps(R, L, 1, xt, idx, y, 0.01, p[0], p[1], p[2], p[3], p[4], p[5], p[6],
                        p[7], p[8], p[9], z, loss, sc, si, xs);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        if (r > 0 && s < best) { best = s; for (int i = 0; i < 32; i++) bt[i] = prof_t[i]; }
    }
    printf("seconds %.9f steps %d\n", best, R * L);
    for (int i = 0; i < 32; i++) if (bt[i]) printf("phase %d %llu\n", i, bt[i]);
    FILE *F = fopen("out.bin", "wb");
    fwrite(z, sizeof(T), (size_t)R * L * NK, F);
    for (int k = 0; k < 10; k++) fwrite(p[k], sizeof(T), sz[k] * R, F);
    fclose(F);
    return 0;
}
"""

TIMER = """
#include <x86intrin.h>
static unsigned long long prof_t[32], prof_last;
#define PM(n) do { unsigned long long t_ = __rdtsc(); \\
    if ((n) > 0) prof_t[(n) - 1] += t_ - prof_last; prof_last = t_; } while (0)
"""
NO_TIMER = "\nstatic unsigned long long prof_t[32];\n#define PM(n) do {} while (0)\n"


def instrumented(source: str) -> str:
    """The step's source with ``PM(i)`` before phase i's anchor and ``PM(n)`` at the end."""
    for name, anchor in PHASES:
        if source.count(anchor) != 1:
            raise RuntimeError(f"phase {name!r}: its anchor occurs {source.count(anchor)} "
                               "times in kernel_src (expected 1): update PHASES")  # fmt: skip
    for i, (_name, anchor) in enumerate(PHASES):
        source = source.replace(anchor, f"PM({i});\n{anchor}")
    if source.count(END) != 1:
        raise RuntimeError("the step's end moved: update END")
    return source.replace(END, END.replace("\n}\n", f"\n    PM({len(PHASES)});\n}}\n"))


def build(tmp: Path, name: str, source: str, header: str, defines: list[str]) -> Path:
    inc = "#include <math.h>"
    (tmp / "step.c").write_text(source.replace(inc, inc + header, 1))
    (tmp / "main.c").write_text(MAIN)
    flags = [f for f in _FLAGS if f not in ("-shared", "-fPIC")]
    exe = tmp / name
    res = subprocess.run([os.environ.get("CC", "gcc"), *flags, *defines, str(tmp / "main.c"),
                          "-o", str(exe), "-lm"], capture_output=True, text=True)  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return exe


def run(exe: Path, tmp: Path, args: list[int]) -> tuple[float, int, dict[int, int], bytes]:
    out = subprocess.run([str(exe), *map(str, args)], cwd=tmp, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    sec, steps = re.search(r"seconds (\S+) steps (\d+)", out).groups()
    phases = {int(i): int(c) for i, c in re.findall(r"phase (\d+) (\d+)", out)}
    return float(sec), int(steps), phases, (tmp / "out.bin").read_bytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--steps", type=int, default=200, help="steps per trial and call")
    ap.add_argument("--reps", type=int, default=5, help="timed calls (fastest kept)")
    args = ap.parse_args()
    if platform.machine() not in ("x86_64", "AMD64"):
        # not an error: `make bench` runs every bench script on whatever CPU it has
        print(f"bench_kernel_phases: not run, it needs an x86-64 CPU (the time-stamp "
              f"counter); this one is {platform.machine()}")  # fmt: skip
        return
    spec = CNNSpec(1, 3)
    R, L = args.trials, args.steps
    data = make_geomnist(600, 60, seed=0)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(data.y_train), (R, L)).astype(np.int64)
    defines = ["-DT=float"] + [f"-D{k}={v}" for k, v in sorted(_dims(spec).items())]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        np.ascontiguousarray(data.x_train, dtype=np.float32).tofile(tmp / "x.bin")
        idx.tofile(tmp / "idx.bin")
        np.asarray(data.y_train, dtype=np.int64)[idx].tofile(tmp / "y.bin")
        params = [initial_params(TrainConfig(n_trials=R), spec, r, dtype=torch.float32)
                  for r in range(R)]  # fmt: skip
        for k, name in enumerate(spec.param_shapes()):
            torch.stack([p[name] for p in params]).numpy().tofile(tmp / f"p{k}.bin")
        plain = build(tmp, "plain", SOURCE, NO_TIMER, defines)
        timed = build(tmp, "timed", instrumented(SOURCE), TIMER, defines)
        run_args = [R, L, len(data.y_train), args.reps]
        sec0, steps, _, out0 = run(plain, tmp, run_args)
        sec1, _, ticks, out1 = run(timed, tmp, run_args)
    total = sum(ticks.values())
    hz = total / sec1  # the counter's rate, from the instrumented run's own clock
    us_step = 1e6 * sec0 / steps
    rows = [{"phase": name, "ticks_per_step": ticks.get(i, 0) / steps,
             "share": ticks.get(i, 0) / total, "us_per_step": 1e6 * ticks.get(i, 0) / steps / hz}
            for i, (name, _a) in enumerate(PHASES)]  # fmt: skip
    lines = [f"compiled step, paper CNN on GeoMNIST, float32, {R} trials × {L} steps per call, "
             f"one thread: {us_step:.2f} µs per trial-step (plain build); instrumented "
             f"{1e6 * sec1 / steps:.2f}; records of the two builds bitwise equal: "
             f"{out0 == out1}; counter {hz / 1e9:.2f} GHz",
             f"{'phase':34s} {'ticks/step':>10s} {'share':>7s} {'µs/step':>8s}"]  # fmt: skip
    for r in rows:
        lines.append(f"{r['phase']:34s} {r['ticks_per_step']:10.0f} {100 * r['share']:6.1f}% "
                     f"{r['us_per_step']:8.2f}")  # fmt: skip
    print("\n".join(lines))
    res = {
        "us_per_step": us_step,
        "us_per_step_instrumented": 1e6 * sec1 / steps,
        "bitwise_equal": out0 == out1,
        "counter_ghz": hz / 1e9,
        "trials": R,
        "steps_per_call": L,
        "reps": args.reps,
        "phases": rows,
        "cpu": platform.processor() or platform.machine(),
    }
    path = Path(__file__).resolve().parent / "results" / "kernel_phases.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
