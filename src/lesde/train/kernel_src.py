"""C source of the compiled SGD step of the paper's CNN (`lesde.train.engine_fast`); its
evaluation forward, compiled into the same library, is in `lesde.train.kernel_eval_src`.

Kept as a Python string so that it ships with the package (no package-data rules) and
is compiled, at run time, with the network's dimensions as constants (``-DN1=6`` ...),
which lets gcc unroll and vectorise every inner loop for that shape.

One call advances a block of trials; each trial's whole step (forward, backward, update)
runs before the next one's, so its ~240 KB of parameters are read from memory once per
step and stay in the core's L2 cache between the forward and the backward pass.

What the loops exploit (all exact: the same sums as the reference, in another order):

- max-pool sends the gradient to one element of each 2×2 window, so the backward
  convolutions run on the pooled positions only (a quarter of the work of a dense
  ``convolution_backward``), and positions whose ReLU is off are skipped;
- conv2's forward is an im2col GEMM (position-major rows, tap-major weights); its weight
  gradient is summed a channel at a time in registers; its input gradient a conv2 output
  row at a time: each position's im2col-row gradient in registers, added into the pooled
  planes a whole row at a time (a shifted load and a lane mask per position), so no
  gradient rows are stored (they were a 64 KB pass through L2 per step);
- each fully connected layer's backward reads a weight row once: the input gradient
  uses the old row, then the row is updated (``W ← W − lr·gᵀh``), the input gradient of
  12 vectors of inputs at a time held in registers over all rows;
- conv1's weight gradient loads each input row once for two output channels (where a
  conv1 row is at most two vectors: float32 up to image side 36);
- every work buffer starts on a 64-byte boundary (vector stores that cross a cache line
  cost two);
- dot products keep 4 vectors of independent partial sums (fixed order: deterministic,
  and no ``-ffast-math``, so IEEE arithmetic throughout).

The later speed-ups (aligned buffers, registers, the row-wise col2im) moved data, not
sums: every sum keeps its order in the source. With ``-ffp-contract=fast`` gcc chooses
which ``a·b + c`` it fuses, and that choice can move with the code around it: the paper's
network (GeoMNIST's and CIFAR's shapes, float32 and float64) records the same bits as
before them (checked); a few other shapes differ in the last bits (found in review).

Why this file is long: it is one C translation unit, the step's phases in the order they
run, each loop with the measurement that chose its form; splitting it across strings
would separate helpers from the one function that inlines them.
"""

from lesde.train.kernel_eval_src import EVAL_SOURCE

_STEP = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>

#define KS 5
#define S1 (S0 - KS + 1)
#define P1 (S1 / 2)
#define S2 (P1 - KS + 1)
#define P2 (S2 / 2)
#define KK1 (CIN * KS * KS)
#define KK2 (N1 * KS * KS)
#define NF (N2 * P2 * P2)
#define Q1 (P1 * P1)
#define Q2 (P2 * P2)
/* conv1's output plane: S1 rows padded to S1P (whole, aligned vector stores) */
#define A1 (S1 * S1P)
#define A2 (S2 * S2)
#define LANES (256 / (int)sizeof(T))
#define VL (64 / (int)sizeof(T))
#define PB 8
/* conv1 rows computed in whole vectors: lanes past S1 are dropped (ga1 rows zero there) */
#define NV1 ((S1 + VL - 1) / VL)
#define S1P (NV1 * VL)
/* conv2's channels-last output padded to whole vectors */
#define NV2 ((N2 + VL - 1) / VL)
#define N2P (NV2 * VL)
/* tap rows padded to whole vectors: the gradient axpys have no scalar remainder */
#define KP ((KK2 + VL - 1) / VL * VL)
#define A2P ((A2 + PB - 1) / PB * PB)
/* the pooled planes' gradient in rows padded to whole vectors (col2im adds whole rows) */
#define NVP ((P1 + VL - 1) / VL)
#define P1P (NVP * VL)
#define MAXW (NF > N3 ? (NF > N4 ? NF : N4) : (N3 > N4 ? N3 : N4))

/* one AVX-512-sized vector of T (GCC vector extension): accumulators declared as these
   stay in registers, where gcc kept plain arrays on the stack (measured) */
typedef T V __attribute__((vector_size(64)));
static inline V vload(const T *p) { V v; memcpy(&v, p, sizeof v); return v; }
/* integer lanes of T's width: lane masks (x & 0 is +0, x & ~0 is x, NaN included) */
#define TBYTES_float 4
#define TBYTES_double 8
#define TBYTES_(t) TBYTES_##t
#define TBYTES(t) TBYTES_(t)
#if TBYTES(T) == 4
typedef int32_t VI __attribute__((vector_size(64)));
#else
typedef int64_t VI __attribute__((vector_size(64)));
#endif

/* the lanes' sum by halves, t[l] += t[l + w] for w = VL/2, ..., 1 (a running scalar sum
   waited ~VL FMA latencies); each halving one vector add of the upper half onto the
   lower (through a lane array, gcc stored the vector and added scalars: measured) */
typedef T V32 __attribute__((vector_size(32)));
typedef T V16 __attribute__((vector_size(16)));
static inline T hsum(V v) {
    V32 a, b;
    memcpy(&a, &v, 32);
    memcpy(&b, (char *)&v + 32, 32);
    a += b;
    V16 c, d;
    memcpy(&c, &a, 16);
    memcpy(&d, (char *)&a + 16, 16);
    c += d;
    T t[16 / sizeof(T)];
    memcpy(t, &c, 16);
    for (int w = 8 / (int)sizeof(T); w > 0; w /= 2)
        for (int l = 0; l < w; l++) t[l] += t[l + w];
    return t[0];
}

static inline T relu(T v) { return v > 0 ? v : (v != v ? v : (T)0); }

static inline T dot(const T *restrict a, const T *restrict b, int n) {
    T s[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) s[l] += a[i + l] * b[i + l];
    for (int l = 0; i + l < n; l++) s[l] += a[i + l] * b[i + l];
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) s[l] += s[l + w];
    return s[0];
}

/* four rows' dot products, out[u] = w[u·in ..] · h, with two vector sums per row: eight
   independent FMA chains (one per row was bound by the FMA latency, measured) */
static inline void dot4(const T *restrict w, int in, const T *restrict h, T *restrict out) {
    V s[4][2] = {{(V){0}}};
    int i = 0;
    for (; i + 2 * VL <= in; i += 2 * VL) {
        V h0 = vload(h + i), h1 = vload(h + i + VL);
        for (int u = 0; u < 4; u++) {
            s[u][0] += vload(w + u * in + i) * h0;
            s[u][1] += vload(w + u * in + i + VL) * h1;
        }
    }
    if (i + VL <= in) {
        V h0 = vload(h + i);
        for (int u = 0; u < 4; u++) s[u][0] += vload(w + u * in + i) * h0;
        i += VL;
    }
    for (int u = 0; u < 4; u++) {
        T r = hsum(s[u][0] + s[u][1]);
        for (int k = i; k < in; k++) r += w[u * in + k] * h[k];
        out[u] = r;
    }
}

/* out[b·rows + o] = act(bias[o] + W[o]·h[b]) for B samples; act: ReLU or identity */
static void fc_fwd(int B, int rows, int in, const T *restrict W, const T *restrict bias,
                   const T *restrict h, T *restrict out, int act) {
    int o = 0;
    for (; o + 4 <= rows; o += 4)
        for (int b = 0; b < B; b++) {
            T s[4];
            dot4(W + (size_t)o * in, in, h + (size_t)b * in, s);
            for (int u = 0; u < 4; u++) {
                T v = bias[o + u] + s[u];
                out[b * rows + o + u] = act ? relu(v) : v;
            }
        }
    for (; o < rows; o++)
        for (int b = 0; b < B; b++) {
            T v = bias[o] + dot(W + (size_t)o * in, h + (size_t)b * in, in);
            out[b * rows + o] = act ? relu(v) : v;
        }
}

static inline void axpy(T *restrict y, T a, const T *restrict x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* the even and odd lanes of a vector pair (a's, then b's): GCC's __builtin_shuffle with
   the index vectors ev, od; clang's __builtin_shufflevector takes constant indices */
#if defined(__clang__)
#if TBYTES(T) == 4
#define EVENS(a, b) \
    __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#define ODDS(a, b) \
    __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)
#else
#define EVENS(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#define ODDS(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15)
#endif
#else
#define EVENS(a, b) __builtin_shuffle(a, b, ev)
#define ODDS(a, b) __builtin_shuffle(a, b, od)
#endif

/* 2x2 max-pool of one conv1 plane (rows of S1P), then ReLU: out (P1 × P1), at: each
   window's first maximum as an index into the plane (torch's kernel). A row pair's
   windows at once: the even and odd columns split by a shuffle, the same comparisons in
   the same order as one window at a time (whose branches cost ~5 % of a step) */
static void pool1(const T *restrict a, T *restrict out, int32_t *restrict at) {
    VI iota, ev, od;
    for (int l = 0; l < VL; l++) {
        iota[l] = l;
        ev[l] = 2 * l;
        od[l] = 2 * l + 1;
    }
    for (int i = 0; i < P1; i++) {
        const T *r0 = a + 2 * i * S1P, *r1 = r0 + S1P;
        for (int u = 0; u < NVP; u++) {
            const int hi = 2 * u + 1 < NV1;  /* an odd NV1: the last pair's upper half is 0 */
            V x0 = vload(r0 + 2 * u * VL), x1 = hi ? vload(r0 + (2 * u + 1) * VL) : (V){0};
            V y0 = vload(r1 + 2 * u * VL), y1 = hi ? vload(r1 + (2 * u + 1) * VL) : (V){0};
            V t[4] = {EVENS(x0, x1), ODDS(x0, x1), EVENS(y0, y1), ODDS(y0, y1)};
            V m = t[0];
            VI k = (VI){0};
            for (int w = 1; w < 4; w++) {
                VI c = (t[w] > m) | (t[w] != t[w]);
                m = (V)(((VI)t[w] & c) | ((VI)m & ~c));
                k = (c & w) | (k & ~c);
            }
            V o = (V)((VI)m & ((m > 0) | (m != m)));  /* relu */
            VI idx = 2 * i * S1P + 2 * (iota + u * VL) + (k & 1) + (k >> 1) * S1P;
            for (int l = 0; l < VL && u * VL + l < P1; l++) {
                out[i * P1 + u * VL + l] = o[l];
                at[i * P1 + u * VL + l] = (int32_t)idx[l];
            }
        }
    }
}

#define GC 12

/* fc backward of one layer for B samples: gin = g·W (old W), W -= lr·gᵀh, b -= lr·Σg,
   then gin masked by the ReLU of the layer's input (h > 0) */
static void fc_back(int B, int rows, int in, T *restrict W, T *restrict bias,
                    const T *restrict h, const T *restrict g, T *restrict gin,
                    T *restrict tmp, T lr) {
    memset(gin, 0, sizeof(T) * (size_t)B * in);
    if (B == 1) {
        /* one pass over each row: the input gradient from the old row, then the update;
           a row whose output gradient is 0 (ReLU off) is neither read nor written. The
           input is taken in chunks of GC vectors whose input gradient and input stay in
           registers over all rows (through memory, each row cost a second store) */
        int i0 = 0;
        for (; i0 + GC * VL <= in; i0 += GC * VL) {
            V gv[GC], hv[GC];
            for (int v = 0; v < GC; v++) {
                gv[v] = (V){0};
                hv[v] = vload(h + i0 + v * VL);
            }
            for (int o = 0; o < rows; o++) {
                T go = g[o], a = -lr * go;
                if (go == 0) continue;
                T *row = W + (size_t)o * in + i0;
                for (int v = 0; v < GC; v++) {
                    V r = vload(row + v * VL);
                    gv[v] += go * r;
                    r += a * hv[v];
                    memcpy(row + v * VL, &r, sizeof r);
                }
            }
            memcpy(gin + i0, gv, sizeof gv);
        }
        for (int o = 0; o < rows; o++) {
            T go = g[o], a = -lr * go;
            if (go == 0) continue;
            T *row = W + (size_t)o * in;
            for (int i = i0; i < in; i++) {
                gin[i] += go * row[i];
                row[i] += a * h[i];
            }
            bias[o] += a;
        }
        for (int i = 0; i < in; i++) gin[i] = h[i] > 0 ? gin[i] : (T)0;
        return;
    }
    for (int o = 0; o < rows; o++) {
        T *row = W + (size_t)o * in;
        T gb = 0;
        for (int b = 0; b < B; b++) axpy(gin + (size_t)b * in, g[b * rows + o], row, in);
        memset(tmp, 0, sizeof(T) * in);
        for (int b = 0; b < B; b++) {
            gb += g[b * rows + o];
            axpy(tmp, g[b * rows + o], h + (size_t)b * in, in);
        }
        axpy(row, -lr, tmp, in);
        bias[o] += -lr * gb;
    }
    for (int i = 0; i < B * in; i++) gin[i] = h[i] > 0 ? gin[i] : (T)0;
}

/* conv2's weights for the GEMM: w2t tap-major with channels padded to N2P (forward),
   w2p channel-major with taps padded to KP (input gradient); b2p the padded bias */
static void prep_w2(const T *restrict cw2, const T *restrict cb2, T *restrict w2t,
                    T *restrict w2p, T *restrict b2p) {
    memset(b2p, 0, sizeof(T) * N2P);
    memset(w2t, 0, sizeof(T) * KK2 * N2P);
    for (int co = 0; co < N2; co++) {
        b2p[co] = cb2[co];
        for (int k = 0; k < KK2; k++) w2t[k * N2P + co] = cw2[co * KK2 + k];
    }
    for (int co = 0; co < N2; co++) {
        memcpy(w2p + co * KP, cw2 + co * KK2, sizeof(T) * KK2);
        memset(w2p + co * KP + KK2, 0, sizeof(T) * (KP - KK2));
    }
}

/* conv1 of one image into a1 (N1 planes of A1: S1 rows of S1P, lanes past S1 unused);
   xb readable 2·VL elements past its end */
static void conv1_fwd(const T *restrict xb, const T *restrict cw1, const T *restrict cb1,
                      T *restrict a1) {
    /* conv1, one output row of every channel at a time: N1 · NV1 independent vector
       sums (one running sum per row was bound by the FMA latency, measured) */
    for (int i = 0; i < S1; i++) {
        V acc[N1][NV1];
        for (int co = 0; co < N1; co++)
            for (int v = 0; v < NV1; v++) acc[co][v] = (V){0} + cb1[co];
        for (int ci = 0; ci < CIN; ci++)
            for (int di = 0; di < KS; di++)
                for (int dj = 0; dj < KS; dj++) {
                    const T *xr = xb + ci * S0 * S0 + (i + di) * S0 + dj;
                    int t = ci * KS * KS + di * KS + dj;
                    V xv[NV1];
                    for (int v = 0; v < NV1; v++) xv[v] = vload(xr + v * VL);
                    for (int co = 0; co < N1; co++)
                        for (int v = 0; v < NV1; v++) acc[co][v] += cw1[co * KK1 + t] * xv[v];
                }
        for (int co = 0; co < N1; co++)
            memcpy(a1 + co * A1 + i * S1P, acc[co], sizeof acc[co]);
    }
}

/* max-pool 2 of one image's channels-last conv2 output a2, then ReLU, into its
   NCHW-flattened features fb (argmaxes i2b) */
static void pool2_fwd(const T *restrict a2, T *restrict fb, int32_t *restrict i2b) {
    for (int i = 0; i < P2; i++)
        for (int j = 0; j < P2; j++) {
            int q = i * P2 + j, base = 2 * i * S2 + 2 * j;
            int off[4] = {base, base + 1, base + S2, base + S2 + 1};
            for (int co = 0; co < N2; co++) {
                T m = a2[base * N2P + co];
                int32_t k = base;
                for (int t = 1; t < 4; t++) {
                    T v = a2[off[t] * N2P + co];
                    if (v > m || v != v) { m = v; k = off[t]; }
                }
                fb[co * Q2 + q] = relu(m);
                i2b[co * Q2 + q] = k;
            }
        }
}

/* conv1's weight gradient of nc ≤ C1B output channels, gW1[c] += Σ ga1[c] ⋆ x: each
   input row is loaded once for the nc channels (one channel at a time was bound by the
   unaligned loads, measured); the KS taps of a kernel row together, KS · NV1 independent
   vector sums per channel */
#define C1B (NV1 <= 2 ? 2 : 1)
/* an empty asm that takes a vector in a register (x86: "v", any SIMD register) */
#if defined(__x86_64__) || defined(__i386__)
#define IN_REG(x) __asm__("" : "+v"(x))
#else
#define IN_REG(x) ((void)0)
#endif
static inline __attribute__((always_inline)) void conv1_wgrad(
        int nc, const T *restrict ga1, const T *restrict xb, T *restrict gW1) {
    for (int ci = 0; ci < CIN; ci++)
        for (int di = 0; di < KS; di++) {
            V acc[C1B][KS][NV1];
            for (int c = 0; c < nc; c++)
                for (int dj = 0; dj < KS; dj++)
                    for (int v = 0; v < NV1; v++) acc[c][dj][v] = (V){0};
            for (int i = 0; i < S1; i++) {
                const T *xr = xb + ci * S0 * S0 + (i + di) * S0;
                V gv[C1B][NV1];
                for (int c = 0; c < nc; c++)
                    for (int v = 0; v < NV1; v++)
                        gv[c][v] = vload(ga1 + ((size_t)c * S1 + i) * S1P + v * VL);
                for (int dj = 0; dj < KS; dj++)
                    for (int v = 0; v < NV1; v++) {
                        V xv = vload(xr + dj + v * VL);
                        /* one load for the nc channels: gcc otherwise folds it into each
                           FMA (most of these loads cross a cache line: two cycles each) */
                        IN_REG(xv);
                        for (int c = 0; c < nc; c++) acc[c][dj][v] += gv[c][v] * xv;
                    }
            }
            for (int c = 0; c < nc; c++)
                for (int dj = 0; dj < KS; dj++) {
                    V sv = acc[c][dj][0];
                    for (int v = 1; v < NV1; v++) sv += acc[c][dj][v];
                    gW1[c * KK1 + ci * KS * KS + di * KS + dj] += hsum(sv);
                }
        }
}

/* each work buffer starts on a 64-byte boundary: an unaligned vector store that crosses
   a cache line costs two (measured: the fc1 backward's input gradient) */
#define AL(n) (((size_t)(n) + VL - 1) / VL * VL)

/* The work buffers of a step, in order (name, elements; B the mini-batch size): the one
   list that lesde_scratch / lesde_iscratch sum and trial carves. After each buffer come
   BUFFER_GUARD elements of T (IBUFFER_GUARD of int32), 0 here: a sanitizer test defines
   them, and GUARD_AFTER, to put a poisoned guard between every two buffers. */
#ifndef BUFFER_GUARD
#define BUFFER_GUARD 0
#define IBUFFER_GUARD 0
#define GUARD_AFTER(p) ((void)0)
#endif
#define STEP_BUFFERS(X)                                                                  \
    X(a1, N1 * A1) X(r1, B * N1 * Q1) X(w2t, KK2 * N2P) X(w2p, N2 * KP)                  \
    X(colsT, B * A2P * KP) X(a2, A2P * N2P) X(f, B * NF) X(h3, B * N3) X(h4, B * N4)     \
    X(g5, B * NK) X(g4, B * N4) X(g3, B * N3) X(gf, B * NF) X(pg, A2 * N2)               \
    X(gr1, N1 * P1 * P1P) X(rows, S2 * KP + 3 * P1P) X(ga1, N1 * A1) X(gW1, N1 * KK1)    \
    X(gb1, N1) X(gW2, N2 * KP) X(gb2, N2) X(tmp, MAXW)
#define STEP_IBUFFERS(X) X(i1, B * N1 * Q1) X(i2, B * N2 * Q2) X(pn, A2) X(pco, A2 * N2)
#define SIZE_OF(name, n) +AL(n) + BUFFER_GUARD
#define ISIZE_OF(name, n) +(size_t)(n) + IBUFFER_GUARD
#define CARVE(name, n) T *name = sc; sc += AL(n); GUARD_AFTER(sc);
#define ICARVE(name, n) int32_t *name = si; si += (n); GUARD_AFTER(si);
/* the first buffer on a 64-byte boundary: VL elements of slack in the size */
#define ALIGN64(p) ((T *)(((uintptr_t)(p) + 63) & ~(uintptr_t)63))

long lesde_scratch(int B) { return (long)(VL STEP_BUFFERS(SIZE_OF)); }

long lesde_xscratch(int B) { return (long)B * CIN * S0 * S0 + 2 * VL; }

long lesde_iscratch(int B) { return (long)(0 STEP_IBUFFERS(ISIZE_OF)); }

static void trial(int B, const T *restrict x, const int64_t *restrict y, T lr,
                  T *restrict cw1, T *restrict cb1, T *restrict cw2, T *restrict cb2,
                  T *restrict fw1, T *restrict fb1, T *restrict fw2, T *restrict fb2,
                  T *restrict fw3, T *restrict fb3, T *restrict z, T *restrict loss,
                  T *restrict sc, int32_t *restrict si) {
    sc = ALIGN64(sc);
    STEP_BUFFERS(CARVE)
    STEP_IBUFFERS(ICARVE)

    /* ---------------------------------------------------------------- forward */
    T b2p[N2P];
    prep_w2(cw2, cb2, w2t, w2p, b2p);
    for (int b = 0; b < B; b++) {
        const T *xb = x + (size_t)b * CIN * S0 * S0;
        conv1_fwd(xb, cw1, cb1, a1);
        T *r1b = r1 + (size_t)b * N1 * Q1;
        for (int co = 0; co < N1; co++)
            pool1(a1 + co * A1, r1b + co * Q1, i1 + ((size_t)b * N1 + co) * Q1);
        /* im2col of conv2, one row of KK2 taps per output position (rows past A2: 0) */
        T *cT = colsT + (size_t)b * A2P * KP;
        for (int i = 0; i < S2; i++)
            for (int j = 0; j < S2; j++) {
                T *row = cT + (i * S2 + j) * KP;
                for (int ci = 0; ci < N1; ci++)
                    for (int di = 0; di < KS; di++)
                        memcpy(row + ci * KS * KS + di * KS,
                               r1b + ci * Q1 + (i + di) * P1 + j, sizeof(T) * KS);
                memset(row + KK2, 0, sizeof(T) * (KP - KK2));
            }
        memset(cT + A2 * KP, 0, sizeof(T) * (A2P - A2) * KP);
        /* conv2 as a GEMM, a2[p][co] = b2 + colsT[p]·W2[co], in blocks of PB positions
           whose PB × N2 sums stay in registers */
        for (int p0 = 0; p0 < A2P; p0 += PB) {
            V acc[PB][NV2];
            for (int u = 0; u < PB; u++)
                for (int v = 0; v < NV2; v++) acc[u][v] = vload(b2p + v * VL);
            const T *c = cT + (size_t)p0 * KP;
            for (int k = 0; k < KK2; k++) {
                V wv[NV2];
                for (int v = 0; v < NV2; v++) wv[v] = vload(w2t + k * N2P + v * VL);
                for (int u = 0; u < PB; u++)
                    for (int v = 0; v < NV2; v++) acc[u][v] += c[u * KP + k] * wv[v];
            }
            memcpy(a2 + (size_t)p0 * N2P, acc, sizeof acc);
        }
        pool2_fwd(a2, f + (size_t)b * NF, i2 + (size_t)b * N2 * Q2);
    }
    fc_fwd(B, N3, NF, fw1, fb1, f, h3, 1);
    fc_fwd(B, N4, N3, fw2, fb2, h3, h4, 1);
    fc_fwd(B, NK, N4, fw3, fb3, h4, z, 0);
    /* cross-entropy and its gradient (softmax − onehot) / B, as log_softmax computes */
    for (int b = 0; b < B; b++) {
        const T *zb = z + b * NK;
        T m = zb[0];
        for (int k = 1; k < NK; k++) m = zb[k] > m || zb[k] != zb[k] ? zb[k] : m;
        T s = 0;
        for (int k = 0; k < NK; k++) s += exp(zb[k] - m);
        T ls = log(s);
        for (int k = 0; k < NK; k++) {
            T lp = zb[k] - m - ls;
            if (k == y[b]) loss[b] = -lp;
            T g = exp(lp) - (k == y[b] ? (T)1 : (T)0);
            g5[b * NK + k] = B > 1 ? g / B : g;
        }
    }
    /* --------------------------------------------------------------- backward */
    fc_back(B, NK, N4, fw3, fb3, h4, g5, g4, tmp, lr);
    fc_back(B, N4, N3, fw2, fb2, h3, g4, g3, tmp, lr);
    fc_back(B, N3, NF, fw1, fb1, f, g3, gf, tmp, lr);
    memset(gW1, 0, sizeof(T) * N1 * KK1);
    memset(gb1, 0, sizeof(T) * N1);
    memset(gW2, 0, sizeof(T) * N2 * KP);
    memset(gb2, 0, sizeof(T) * N2);
    for (int b = 0; b < B; b++) {
        const T *xb = x + (size_t)b * CIN * S0 * S0;
        const T *cT = colsT + (size_t)b * A2P * KP;
        const T *gfb = gf + (size_t)b * NF;
        const int32_t *i2b = i2 + (size_t)b * N2 * Q2;
        /* conv2: only each window's maximum has a gradient. Its weight gradient a
           channel at a time, summed in registers (through memory, each update waited for
           the last); the window maxima's gradients listed by position, in channel order,
           for the input gradient below */
        memset(pn, 0, sizeof(int32_t) * A2);
        for (int co = 0; co < N2; co++) {
            V gw[KP / VL];
            for (int v = 0; v < KP / VL; v++) gw[v] = vload(gW2 + co * KP + v * VL);
            T gb = 0;
            for (int q = 0; q < Q2; q++) {
                T g = gfb[co * Q2 + q];
                if (g == 0) continue;
                int p = i2b[co * Q2 + q];
                gb += g;
                const T *cr = cT + (size_t)p * KP;
                for (int v = 0; v < KP / VL; v++) gw[v] += g * vload(cr + v * VL);
                int n = pn[p]++;
                pco[p * N2 + n] = co;
                pg[p * N2 + n] = g;
            }
            memcpy(gW2 + co * KP, gw, sizeof gw);
            gb2[co] += gb;
        }
        /* its input gradient a row of conv2's output at a time: each position's im2col
           row Σ g·W2[co] (channel order) summed in registers, then added into the pooled
           planes (col2im) a whole plane row at a time, each position's KS taps placed at
           its lanes by a shifted load and a lane mask; every element still sums its terms
           in the order of the positions (a scalar col2im was 12 % of the step) */
        memset(gr1, 0, sizeof(T) * N1 * P1 * P1P);
        VI msk[S2][NVP];  /* position j's lanes of a plane row: j, ..., j + KS − 1 */
        for (int j = 0; j < S2; j++)
            for (int v = 0; v < NVP; v++)
                for (int l = 0; l < VL; l++)
                    msk[j][v][l] = v * VL + l >= j && v * VL + l < j + KS ? -1 : 0;
        for (int i = 0; i < S2; i++) {
            for (int j = 0; j < S2; j++) {
                /* a position without gradient adds a row of zeros (no branch below) */
                const int p = i * S2 + j, n = pn[p];
                V gc[KP / VL];
                for (int v = 0; v < KP / VL; v++) gc[v] = (V){0};
                for (int e = 0; e < n; e++) {
                    const T g = pg[p * N2 + e], *wr = w2p + pco[p * N2 + e] * KP;
                    for (int v = 0; v < KP / VL; v++) gc[v] += g * vload(wr + v * VL);
                }
                memcpy(rows + P1P + (size_t)j * KP, gc, sizeof gc);
            }
            for (int ci = 0; ci < N1; ci++)
                for (int di = 0; di < KS; di++) {
                    T *gro = gr1 + ((size_t)ci * P1 + i + di) * P1P;
                    V acc[NVP];
                    for (int v = 0; v < NVP; v++) acc[v] = vload(gro + v * VL);
                    for (int j = 0; j < S2; j++) {
                        /* lane l of the row takes tap l − j of the kernel row (ci, di) */
                        const T *t = rows + P1P + (size_t)j * KP + ci * KS * KS + di * KS - j;
                        for (int v = 0; v < NVP; v++) {
                            VI x;
                            memcpy(&x, t + v * VL, sizeof x);
                            acc[v] += (V)(x & msk[j][v]);
                        }
                    }
                    memcpy(gro, acc, sizeof acc);
                }
        }
        /* ReLU after pool1 and the pool's routing to each window's maximum give conv1's
           output gradient, dense (a sparse patch-by-patch sum stalled on store
           forwarding); its weight gradient is then a correlation with the input */
        const T *r1b = r1 + (size_t)b * N1 * Q1;
        const int32_t *i1b = i1 + (size_t)b * N1 * Q1;
        memset(ga1, 0, sizeof(T) * N1 * A1);
        {
            /* the channels' bias sums side by side: N1 independent chains (one channel
               after another waited an add latency per position) */
            T gb[N1] = {0};
            for (int q = 0; q < Q1; q++)
                for (int co = 0; co < N1; co++) {
                    const T gq = gr1[((size_t)co * P1 + q / P1) * P1P + q % P1];
                    T g = r1b[co * Q1 + q] > 0 ? gq : (T)0;
                    /* the pool's argmax: an index into the padded plane, as ga1's */
                    ga1[co * A1 + i1b[co * Q1 + q]] = g;
                    gb[co] += g;
                }
            for (int co = 0; co < N1; co++) gb1[co] += gb[co];
        }
        for (int c0 = 0; c0 < N1; c0 += C1B) {
            if (N1 - c0 >= C1B)
                conv1_wgrad(C1B, ga1 + (size_t)c0 * A1, xb, gW1 + (size_t)c0 * KK1);
            else
                for (int co = c0; co < N1; co++)
                    conv1_wgrad(1, ga1 + (size_t)co * A1, xb, gW1 + (size_t)co * KK1);
        }
    }
    axpy(cw1, -lr, gW1, N1 * KK1);
    axpy(cb1, -lr, gb1, N1);
    for (int co = 0; co < N2; co++) axpy(cw2 + co * KK2, -lr, gW2 + co * KP, KK2);
    axpy(cb2, -lr, gb2, N2);
}

void lesde_cnn_step(int R, int B, const T *x, const int64_t *y, double lr,
                    T *cw1, T *cb1, T *cw2, T *cb2, T *fw1, T *fb1, T *fw2, T *fb2,
                    T *fw3, T *fb3, T *z, T *loss, T *sc, int32_t *si, T *xs) {
    const size_t n = (size_t)B * CIN * S0 * S0;
    for (int r = 0; r < R; r++) {
        /* into the padded buffer: the conv1 loops read whole vectors past a row's end */
        memcpy(xs, x + r * n, sizeof(T) * n);
        trial(B, xs, y + (size_t)r * B, (T)lr,
              cw1 + (size_t)r * N1 * KK1, cb1 + (size_t)r * N1,
              cw2 + (size_t)r * N2 * KK2, cb2 + (size_t)r * N2,
              fw1 + (size_t)r * N3 * NF, fb1 + (size_t)r * N3,
              fw2 + (size_t)r * N4 * N3, fb2 + (size_t)r * N4,
              fw3 + (size_t)r * NK * N4, fb3 + (size_t)r * NK,
              z + (size_t)r * B * NK, loss + (size_t)r * B, sc, si);
    }
}

void lesde_cnn_steps(int R, int L, int B, const T *x_train, const int64_t *idx,
                     const int64_t *y, double lr, T *cw1, T *cb1, T *cw2, T *cb2, T *fw1,
                     T *fb1, T *fw2, T *fb2, T *fw3, T *fb3, T *z, T *loss, T *sc,
                     int32_t *si, T *xs) {
    /* L steps of each trial in turn: its parameters stay in cache for all of them */
    const size_t img = (size_t)CIN * S0 * S0;
    for (int r = 0; r < R; r++)
        for (int s = 0; s < L; s++) {
            const int64_t *ix = idx + ((size_t)r * L + s) * B;
            for (int b = 0; b < B; b++)
                memcpy(xs + b * img, x_train + ix[b] * img, sizeof(T) * img);
            trial(B, xs, y + ((size_t)r * L + s) * B, (T)lr,
                  cw1 + (size_t)r * N1 * KK1, cb1 + (size_t)r * N1,
                  cw2 + (size_t)r * N2 * KK2, cb2 + (size_t)r * N2,
                  fw1 + (size_t)r * N3 * NF, fb1 + (size_t)r * N3,
                  fw2 + (size_t)r * N4 * N3, fb2 + (size_t)r * N4,
                  fw3 + (size_t)r * NK * N4, fb3 + (size_t)r * NK,
                  z + ((size_t)s * R + r) * B * NK, loss + ((size_t)s * R + r) * B, sc, si);
        }
}
"""

# the evaluation forward is compiled into the same library: it shares the step's helpers
SOURCE = _STEP + EVAL_SOURCE
