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
- conv2 is an im2col GEMM with the columns laid out twice (k-major for the forward,
  position-major for the weight and input gradients), every inner loop contiguous;
- each fully connected layer's backward reads a weight row once: the input gradient
  uses the old row, then the row is updated (``W ← W − lr·gᵀh``);
- dot products keep 4 vectors of independent partial sums (fixed order: deterministic,
  and no ``-ffast-math``, so IEEE arithmetic throughout).
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
#define A1 (S1 * S1)
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
#define MAXW (NF > N3 ? (NF > N4 ? NF : N4) : (N3 > N4 ? N3 : N4))

/* one AVX-512-sized vector of T (GCC vector extension): accumulators declared as these
   stay in registers, where gcc kept plain arrays on the stack (measured) */
typedef T V __attribute__((vector_size(64)));
static inline V vload(const T *p) { V v; memcpy(&v, p, sizeof v); return v; }

/* the lanes' sum by halves (a running scalar sum waited ~VL FMA latencies) */
static inline T hsum(V v) {
    T t[VL];
    memcpy(t, &v, sizeof t);
    for (int w = VL / 2; w > 0; w /= 2)
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

/* 2x2 max-pool of one plane (side s, pooled side p), first maximum as torch's kernel */
static void pool(const T *restrict a, int s, int p, T *restrict out, int32_t *restrict at) {
    for (int i = 0; i < p; i++)
        for (int j = 0; j < p; j++) {
            int base = 2 * i * s + 2 * j;
            int off[4] = {base, base + 1, base + s, base + s + 1};
            T m = a[base];
            int32_t k = base;
            for (int t = 1; t < 4; t++) {
                T v = a[off[t]];
                if (v > m || v != v) { m = v; k = off[t]; }
            }
            out[i * p + j] = relu(m);
            at[i * p + j] = k;
        }
}

/* fc backward of one layer for B samples: gin = g·W (old W), W -= lr·gᵀh, b -= lr·Σg,
   then gin masked by the ReLU of the layer's input (h > 0) */
static void fc_back(int B, int rows, int in, T *restrict W, T *restrict bias,
                    const T *restrict h, const T *restrict g, T *restrict gin,
                    T *restrict tmp, T lr) {
    memset(gin, 0, sizeof(T) * (size_t)B * in);
    if (B == 1) {
        /* one pass over each row: the input gradient from the old row, then the update;
           a row whose output gradient is 0 (ReLU off) is neither read nor written */
        for (int o = 0; o < rows; o++) {
            T go = g[o], a = -lr * go;
            if (go == 0) continue;
            T *row = W + (size_t)o * in;
            for (int i = 0; i < in; i++) {
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

/* conv1 of one image into a1 (N1 planes of S1 × S1); xb readable 2·VL elements past
   its end */
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
            memcpy(a1 + co * A1 + i * S1, acc[co], sizeof(T) * S1);
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

long lesde_scratch(int B) {
    return (long)N1 * A1 + (long)B * N1 * Q1 + (long)KK2 * N2P + (long)N2 * KP
         + (long)B * A2P * KP
         + (long)A2P * N2P + (long)B * (NF + N3 + N4) + (long)B * (NK + N4 + N3 + NF)
         + (long)A2 * KP + (long)N1 * Q1 + (long)N1 * S1 * S1P + (long)N1 * KK1 + N1
         + (long)N2 * KP + N2
         + MAXW;
}

long lesde_xscratch(int B) { return (long)B * CIN * S0 * S0 + 2 * VL; }

long lesde_iscratch(int B) { return (long)B * (N1 * Q1 + N2 * Q2) + A2; }

static void trial(int B, const T *restrict x, const int64_t *restrict y, T lr,
                  T *restrict cw1, T *restrict cb1, T *restrict cw2, T *restrict cb2,
                  T *restrict fw1, T *restrict fb1, T *restrict fw2, T *restrict fb2,
                  T *restrict fw3, T *restrict fb3, T *restrict z, T *restrict loss,
                  T *restrict sc, int32_t *restrict si) {
    T *a1 = sc;                         sc += (size_t)N1 * A1;
    T *r1 = sc;                         sc += (size_t)B * N1 * Q1;
    T *w2t = sc;                        sc += (size_t)KK2 * N2P;
    T *w2p = sc;                        sc += (size_t)N2 * KP;
    T *colsT = sc;                      sc += (size_t)B * A2P * KP;
    T *a2 = sc;                         sc += (size_t)A2P * N2P;
    T *f = sc;                          sc += (size_t)B * NF;
    T *h3 = sc;                         sc += (size_t)B * N3;
    T *h4 = sc;                         sc += (size_t)B * N4;
    T *g5 = sc;                         sc += (size_t)B * NK;
    T *g4 = sc;                         sc += (size_t)B * N4;
    T *g3 = sc;                         sc += (size_t)B * N3;
    T *gf = sc;                         sc += (size_t)B * NF;
    T *gcolsT = sc;                     sc += (size_t)A2 * KP;
    T *gr1 = sc;                        sc += (size_t)N1 * Q1;
    T *ga1 = sc;                        sc += (size_t)N1 * S1 * S1P;
    T *gW1 = sc;                        sc += (size_t)N1 * KK1;
    T *gb1 = sc;                        sc += N1;
    T *gW2 = sc;                        sc += (size_t)N2 * KP;
    T *gb2 = sc;                        sc += N2;
    T *tmp = sc;
    int32_t *i1 = si;                   si += (size_t)B * N1 * Q1;
    int32_t *i2 = si;                   si += (size_t)B * N2 * Q2;
    int32_t *touched = si;

    /* ---------------------------------------------------------------- forward */
    T b2p[N2P];
    prep_w2(cw2, cb2, w2t, w2p, b2p);
    for (int b = 0; b < B; b++) {
        const T *xb = x + (size_t)b * CIN * S0 * S0;
        conv1_fwd(xb, cw1, cb1, a1);
        T *r1b = r1 + (size_t)b * N1 * Q1;
        for (int co = 0; co < N1; co++)
            pool(a1 + co * A1, S1, P1, r1b + co * Q1, i1 + ((size_t)b * N1 + co) * Q1);
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
    memset(gW1, 0, sizeof(T) * (N1 * KK1 + N1 + N2 * KP + N2));
    memset(touched, 0, sizeof(int32_t) * A2);
    for (int b = 0; b < B; b++) {
        const T *xb = x + (size_t)b * CIN * S0 * S0;
        const T *cT = colsT + (size_t)b * A2P * KP;
        const T *gfb = gf + (size_t)b * NF;
        const int32_t *i2b = i2 + (size_t)b * N2 * Q2;
        /* conv2: only each window's maximum has a gradient; a channel's weight gradient
           is summed in registers (through memory, each update waited for the last) */
        for (int co = 0; co < N2; co++) {
            V gw[KP / VL];
            for (int v = 0; v < KP / VL; v++) gw[v] = vload(gW2 + co * KP + v * VL);
            T gb = 0;
            for (int q = 0; q < Q2; q++) {
                T g = gfb[co * Q2 + q];
                if (g == 0) continue;
                int p = i2b[co * Q2 + q];
                gb += g;
                const T *cr = cT + (size_t)p * KP, *wr = w2p + co * KP;
                T *gc = gcolsT + (size_t)p * KP;
                if (!touched[p]) {
                    memset(gc, 0, sizeof(T) * KP);
                    touched[p] = 1;
                }
                for (int v = 0; v < KP / VL; v++) {
                    gw[v] += g * vload(cr + v * VL);
                    V t = vload(gc + v * VL) + g * vload(wr + v * VL);
                    memcpy(gc + v * VL, &t, sizeof t);
                }
            }
            memcpy(gW2 + co * KP, gw, sizeof gw);
            gb2[co] += gb;
        }
        memset(gr1, 0, sizeof(T) * N1 * Q1);
        for (int p = 0; p < A2; p++) {
            if (!touched[p]) continue;
            touched[p] = 0;
            const T *row = gcolsT + (size_t)p * KP;
            int i = p / S2, j = p % S2;
            for (int ci = 0; ci < N1; ci++)
                for (int di = 0; di < KS; di++)
                    for (int dj = 0; dj < KS; dj++)
                        gr1[ci * Q1 + (i + di) * P1 + j + dj] += row[ci * KS * KS + di * KS + dj];
        }
        /* ReLU after pool1 and the pool's routing to each window's maximum give conv1's
           output gradient, dense (a sparse patch-by-patch sum stalled on store
           forwarding); its weight gradient is then a correlation with the input */
        const T *r1b = r1 + (size_t)b * N1 * Q1;
        const int32_t *i1b = i1 + (size_t)b * N1 * Q1;
        memset(ga1, 0, sizeof(T) * N1 * S1 * S1P);
        for (int co = 0; co < N1; co++) {
            T gb = 0;
            for (int q = 0; q < Q1; q++) {
                T g = r1b[co * Q1 + q] > 0 ? gr1[co * Q1 + q] : (T)0;
                int p = i1b[co * Q1 + q];
                ga1[co * S1 * S1P + p / S1 * S1P + p % S1] = g;
                gb += g;
            }
            gb1[co] += gb;
        }
        for (int co = 0; co < N1; co++)
            for (int ci = 0; ci < CIN; ci++)
                for (int di = 0; di < KS; di++) {
                    /* the KS taps of a kernel row together: KS · NV1 independent sums */
                    V acc[KS][NV1] = {{(V){0}}};
                    for (int i = 0; i < S1; i++) {
                        const T *g = ga1 + (co * S1 + i) * S1P;
                        const T *xr = xb + ci * S0 * S0 + (i + di) * S0;
                        V gv[NV1];
                        for (int v = 0; v < NV1; v++) gv[v] = vload(g + v * VL);
                        for (int dj = 0; dj < KS; dj++)
                            for (int v = 0; v < NV1; v++)
                                acc[dj][v] += gv[v] * vload(xr + dj + v * VL);
                    }
                    for (int dj = 0; dj < KS; dj++) {
                        V sv = acc[dj][0];
                        for (int v = 1; v < NV1; v++) sv += acc[dj][v];
                        gW1[co * KK1 + ci * KS * KS + di * KS + dj] += hsum(sv);
                    }
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
