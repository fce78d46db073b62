"""C source of the evaluation forward of the compiled CNN (`lesde.train.kernel_src`).

Every trial's logits and penultimate features on the same images (probes, validation,
the direct-LE probes), no update: ``lesde_cnn_forward``, called by
`lesde.train.engine_cnn.EnsembleCNN.forward_shared`. Appended to the step's source and
compiled with it (the same ``-D`` dimensions), it uses the step's helpers (``conv1_fwd``,
``pool1``, ``prep_w2``, ``pool2_fwd``, ``relu``, ``vload``). Checked with the step, once
per process, against the torch forward (`lesde.train.engine_cnn._check`).
"""

EVAL_SOURCE = r"""
/* ------------------------------------------------------------------ evaluation */
/* The forward of every trial on the same N images (probes, validation), no update.
   Each trial's images in turn (its weights stay in cache), in blocks of NB images:
   - conv1 and the first pool as in the step;
   - conv2 straight from the pooled planes, no im2col: the PR positions of an output row
     at a time, each tap one weight vector (the N2 channels) times PR broadcasts of the
     pooled input, which are consecutive in memory;
   - the fully connected layers on the whole block, with weights transposed once per
     trial so that the output units are the vector lanes: IB images × FV vectors of
     sums per pass, each weight vector loaded once for IB images (the step's per-image
     dot products end in a horizontal sum per unit, ~10 % of an evaluation). */
#define NB 32
#define PR (S2 < 10 ? S2 : 10)
/* 8 images × 2 vectors of sums per pass: 9.7 µs per image and trial (4 × 4: 10.9) */
#define IB 8
#define FV 2
#define FW (FV * VL)
#define RUP(n) (((n) + FW - 1) / FW * FW)

/* out[b][o] = act(bias[o] + Σ_i h[b][i] WT[i][o]) for nb ≤ NB samples; WT (in × RUP(rows))
   and bias (RUP(rows)) zero-padded; rows of h past nb are read (finite) and not stored */
static void fc_fwd_t(int nb, int rows, int in, const T *restrict WT, const T *restrict bias,
                     const T *restrict h, T *restrict out, int act) {
    const int ld = RUP(rows);
    for (int o0 = 0; o0 < rows; o0 += FW)
        for (int b0 = 0; b0 < nb; b0 += IB) {
            V acc[IB][FV];
            for (int u = 0; u < IB; u++)
                for (int v = 0; v < FV; v++) acc[u][v] = vload(bias + o0 + v * VL);
            for (int i = 0; i < in; i++) {
                V w[FV];
                for (int v = 0; v < FV; v++) w[v] = vload(WT + (size_t)i * ld + o0 + v * VL);
                for (int u = 0; u < IB; u++) {
                    T hv = h[(size_t)(b0 + u) * in + i];
                    for (int v = 0; v < FV; v++) acc[u][v] += hv * w[v];
                }
            }
            for (int u = 0; u < IB && b0 + u < nb; u++) {
                T t[FW];
                memcpy(t, acc[u], sizeof t);
                int n = rows - o0 < FW ? rows - o0 : FW;
                for (int l = 0; l < n; l++)
                    out[(size_t)(b0 + u) * rows + o0 + l] = act ? relu(t[l]) : t[l];
            }
        }
}

/* WT = Wᵀ zero-padded to RUP(rows) columns; bp = bias zero-padded */
static void transpose_fc(int rows, int in, const T *restrict W, const T *restrict bias,
                         T *restrict WT, T *restrict bp) {
    const int ld = RUP(rows);
    memset(WT, 0, sizeof(T) * (size_t)in * ld);
    memset(bp, 0, sizeof(T) * ld);
    for (int o = 0; o < rows; o++) {
        bp[o] = bias[o];
        for (int i = 0; i < in; i++) WT[(size_t)i * ld + o] = W[(size_t)o * in + i];
    }
}

/* conv2 of one image from its pooled planes r1 into the channels-last a2 (A2P × N2P) */
static void conv2_direct(const T *restrict r1, const T *restrict w2t, const T *restrict b2p,
                         T *restrict a2) {
    for (int i = 0; i < S2; i++)
        for (int j = 0; j < S2; j += PR) {
            int j0 = j + PR <= S2 ? j : S2 - PR;  /* the last block may overlap: same sums */
            V acc[PR][NV2];
            for (int u = 0; u < PR; u++)
                for (int v = 0; v < NV2; v++) acc[u][v] = vload(b2p + v * VL);
            for (int ci = 0; ci < N1; ci++)
                for (int di = 0; di < KS; di++)
                    for (int dj = 0; dj < KS; dj++) {
                        const int k = ci * KS * KS + di * KS + dj;
                        const T *x = r1 + ci * Q1 + (i + di) * P1 + j0 + dj;
                        V wv[NV2];
                        for (int v = 0; v < NV2; v++) wv[v] = vload(w2t + k * N2P + v * VL);
                        for (int u = 0; u < PR; u++)
                            for (int v = 0; v < NV2; v++) acc[u][v] += x[u] * wv[v];
                    }
            memcpy(a2 + (size_t)(i * S2 + j0) * N2P, acc, sizeof acc);
        }
}

/* the work buffers of an evaluation, as the step's (STEP_BUFFERS) */
#define FWD_BUFFERS(X)                                                                   \
    X(a1, N1 * A1) X(r1, N1 * Q1) X(w2t, KK2 * N2P) X(w2p, N2 * KP) X(a2, A2P * N2P)     \
    X(f, (NB + IB) * NF) X(h3, (NB + IB) * N3) X(h4, (NB + IB) * N4)                     \
    X(wt1, NF * RUP(N3)) X(wt2, N3 * RUP(N4)) X(wt3, N4 * RUP(NK)) X(bp1, RUP(N3))       \
    X(bp2, RUP(N4)) X(bp3, RUP(NK)) X(b2p, N2P) X(xs, CIN * S0 * S0 + 2 * VL)
#define FWD_IBUFFERS(X) X(i1, N1 * Q1) X(i2, N2 * Q2)

long lesde_fscratch(void) { return (long)(VL FWD_BUFFERS(SIZE_OF)); }

long lesde_fiscratch(void) { return (long)(0 FWD_IBUFFERS(ISIZE_OF)); }

void lesde_cnn_forward(int R, int N, const T *x, const T *cw1, const T *cb1, const T *cw2,
                       const T *cb2, const T *fw1, const T *fb1, const T *fw2, const T *fb2,
                       const T *fw3, const T *fb3, T *z, T *feat, T *sc, int32_t *si) {
    /* logits z (R, N, NK) and penultimate features feat (R, N, N4) of every trial on the
       same images x (N, CIN, S0, S0) */
    const size_t img = (size_t)CIN * S0 * S0;
    sc = ALIGN64(sc);
    FWD_BUFFERS(CARVE)
    FWD_IBUFFERS(ICARVE)
    /* the padding past an image and the block's rows past nb are read: finite */
    memset(xs, 0, sizeof(T) * (img + 2 * VL));
    memset(f, 0, sizeof(T) * (size_t)(NB + IB) * NF);
    memset(h3, 0, sizeof(T) * (size_t)(NB + IB) * N3);
    memset(h4, 0, sizeof(T) * (size_t)(NB + IB) * N4);
    for (int r = 0; r < R; r++) {
        prep_w2(cw2 + (size_t)r * N2 * KK2, cb2 + (size_t)r * N2, w2t, w2p, b2p);
        transpose_fc(N3, NF, fw1 + (size_t)r * N3 * NF, fb1 + (size_t)r * N3, wt1, bp1);
        transpose_fc(N4, N3, fw2 + (size_t)r * N4 * N3, fb2 + (size_t)r * N4, wt2, bp2);
        transpose_fc(NK, N4, fw3 + (size_t)r * NK * N4, fb3 + (size_t)r * NK, wt3, bp3);
        const T *c1 = cw1 + (size_t)r * N1 * KK1, *d1 = cb1 + (size_t)r * N1;
        for (int n0 = 0; n0 < N; n0 += NB) {
            int nb = N - n0 < NB ? N - n0 : NB;
            for (int b = 0; b < nb; b++) {
                memcpy(xs, x + (size_t)(n0 + b) * img, sizeof(T) * img);
                conv1_fwd(xs, c1, d1, a1);
                for (int co = 0; co < N1; co++)
                    pool1(a1 + co * A1, r1 + co * Q1, i1 + co * Q1);
                conv2_direct(r1, w2t, b2p, a2);
                pool2_fwd(a2, f + (size_t)b * NF, i2);
            }
            fc_fwd_t(nb, N3, NF, wt1, bp1, f, h3, 1);
            fc_fwd_t(nb, N4, N3, wt2, bp2, h3, h4, 1);
            memcpy(feat + ((size_t)r * N + n0) * N4, h4, sizeof(T) * (size_t)nb * N4);
            fc_fwd_t(nb, NK, N4, wt3, bp3, h4, z + ((size_t)r * N + n0) * NK, 0);
        }
    }
}
"""
