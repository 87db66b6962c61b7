/* connpack._rngc: the compiled weight generator. connpack/rng.py is the normative reference; every
 * function here writes the same bytes as its numpy counterpart there (tests/test_rng_compiled.py).
 *
 * Build flags (setup.py): -O3 -ffp-contract=off, never -ffast-math. Every float64 expression below is
 * written in the order rng.py evaluates it, one IEEE-754 operation at a time, so no fused multiply-add
 * and no reassociation can change a bit.
 *
 * Buffers come through the buffer protocol (no numpy headers needed to build); the GIL is released
 * around every loop, so Python threads run chunks in parallel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__FP_FAST_FMA) && defined(__FAST_MATH__)
#error "connpack._rngc must not be built with -ffast-math"
#endif

#define M0 0xD2511F53u
#define M1 0xCD9E8D57u
#define W0 0x9E3779B9u
#define W1 0xBB67AE85u
#define BATCH 512 /* blocks per inner batch: 2048 words, 8 KiB, stays in L1 */

#define NB 1024 /* pairs per batch */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif
/* Words first .. first+n-1 of the stream keyed by (k0, k1, index, stream) into w. */
CLONES static void words(uint32_t *w, uint64_t first, size_t n, uint32_t k0, uint32_t k1, uint32_t index,
                  uint32_t stream) {
    uint32_t c0[BATCH], c1[BATCH], c2[BATCH], c3[BATCH];
    uint64_t b = first >> 2;
    size_t skip = (size_t)(first & 3), pos = 0;
    while (pos < n) {
        size_t need = (skip + (n - pos) + 3) >> 2;
        size_t m = need < BATCH ? need : BATCH;
        for (size_t j = 0; j < m; j++) {
            uint64_t bj = b + j;
            c0[j] = (uint32_t)bj;
            c1[j] = (uint32_t)(bj >> 32);
            c2[j] = index;
            c3[j] = stream;
        }
        uint32_t a0 = k0, a1 = k1;
        for (int r = 0; r < 10; r++) {
            if (r) {
                a0 += W0;
                a1 += W1;
            }
            for (size_t j = 0; j < m; j++) { /* vectorised by the compiler */
                uint64_t p0 = (uint64_t)M0 * c0[j], p1 = (uint64_t)M1 * c2[j];
                uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[j] ^ a0;
                uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[j] ^ a1;
                c1[j] = (uint32_t)p1;
                c3[j] = (uint32_t)p0;
                c0[j] = n0;
                c2[j] = n2;
            }
        }
        if (skip == 0 && pos + 4 * m <= n) { /* whole blocks: a straight interleave */
            uint32_t *o = w + pos;
            for (size_t j = 0; j < m; j++) {
                o[4 * j] = c0[j];
                o[4 * j + 1] = c1[j];
                o[4 * j + 2] = c2[j];
                o[4 * j + 3] = c3[j];
            }
            pos += 4 * m;
            b += m;
            continue;
        }
        for (size_t j = 0; j < m; j++) {
            uint32_t blk[4] = {c0[j], c1[j], c2[j], c3[j]};
            for (size_t q = (j == 0 ? skip : 0); q < 4 && pos < n; q++) w[pos++] = blk[q];
        }
        skip = 0;
        b += m;
    }
}

/* ---------------------------------------------------------------- the portable ln / sin / cos (rng.py) */
static const double LOG_C[11] = {1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11,
                                 1.0 / 9,  1.0 / 7,  1.0 / 5,  1.0 / 3,  1.0 / 1};
static double SIN_C[9], COS_C[9]; /* filled from Python at import: the reference's own float64 values */
static double LN2_HI, LN2_LO, TWO_PI_2M24;
#define FRAC ((int64_t)((1ULL << 52) - 1))
#define FRAC_SQRT2 ((int64_t)0x6A09E667F3BCDLL) /* fraction bits of fl(2 * 0.7071067811865476) */

static inline double ln_portable(double u) {
    int64_t bits;
    memcpy(&bits, &u, 8);
    int64_t mant = bits & FRAC;
    int64_t small = mant < FRAC_SQRT2;
    int64_t ex = (bits >> 52) - 1022 - small;
    double ef = (double)ex;
    int64_t mb = mant | ((small + 1022) << 52);
    double m;
    memcpy(&m, &mb, 8);
    double s = m - 1.0;
    m = m + 1.0;
    s = s / m;
    double z = s * s;
    double p = LOG_C[0];
    for (int i = 1; i < 11; i++) {
        p = p * z;
        p = p + LOG_C[i];
    }
    p = p * s;
    p = p * 2.0;
    double lo = ef * LN2_LO;
    p = p + lo;
    double hi = ef * LN2_HI;
    p = p + hi;
    return p;
}

/* Normal pairs from words w[0 .. 2m-1] into x[0 .. 2m-1] (pair j uses w[2j], w[2j+1]). Written as
 * loops over arrays so the compiler vectorises them; each element still sees the same operations in the
 * same order as rng.py. The AVX2 clone changes only the vector width (no FMA: not in the target, and
 * -ffp-contract=off). */
CLONES static void box_muller(const uint32_t *w, double *x, size_t m) {
    double r[NB], st[NB], ct[NB];
    int32_t qq[NB], sw[NB];
    for (size_t j = 0; j < m; j++) {
        double u = (double)(int32_t)(w[2 * j] >> 8);
        u = u + 1.0;
        u = u * 0x1p-24;
        int64_t bits;
        memcpy(&bits, &u, 8);
        int64_t mant = bits & FRAC;
        int64_t small = mant < FRAC_SQRT2 ? 1 : 0;
        int32_t ex = (int32_t)(bits >> 52) - 1022 - (int32_t)small;
        double ef = (double)ex;
        int64_t mb = mant | ((small + 1022) << 52);
        double mm;
        memcpy(&mm, &mb, 8);
        double s = mm - 1.0;
        mm = mm + 1.0;
        s = s / mm;
        double z = s * s;
        double p = LOG_C[0];
        for (int i = 1; i < 11; i++) {
            p = p * z;
            p = p + LOG_C[i];
        }
        p = p * s;
        p = p * 2.0;
        double lo = ef * LN2_LO;
        p = p + lo;
        double hi = ef * LN2_HI;
        p = p + hi;
        p = p * -2.0;
        r[j] = sqrt(p);
    }
    for (size_t j = 0; j < m; j++) {
        int32_t k = (int32_t)(w[2 * j + 1] >> 8);
        int32_t q = k >> 22;
        int32_t a = k & ((1 << 22) - 1);
        int32_t bb = (1 << 22) - a;
        int32_t flip = bb < a ? 1 : 0;
        a = flip ? bb : a;
        double t = (double)a;
        t = t * TWO_PI_2M24;
        double z = t * t;
        double sv = SIN_C[0];
        for (int i = 1; i < 9; i++) {
            sv = sv * z;
            sv = sv + SIN_C[i];
        }
        st[j] = sv * t;
        double cv = COS_C[0];
        for (int i = 1; i < 9; i++) {
            cv = cv * z;
            cv = cv + COS_C[i];
        }
        ct[j] = cv;
        qq[j] = q;
        sw[j] = (q & 1) ^ flip;
    }
    for (size_t j = 0; j < m; j++) {
        double c = sw[j] ? st[j] : ct[j];
        double s = sw[j] ? ct[j] : st[j];
        double sc = 1.0 - (double)((qq[j] + 1) & 2);
        double ss = 1.0 - (double)(qq[j] & 2);
        c = c * sc;
        s = s * ss;
        x[2 * j] = r[j] * c;
        x[2 * j + 1] = r[j] * s;
    }
}

/* ---------------------------------------------------------------- fill */
enum { K_WORDS, K_UNIFORM, K_KAIMING_UNIFORM, K_SCORES, K_SIGNED, K_NORMAL, K_NORMAL64, K_UNIFORM64, K_COUNT };

typedef struct {
    int kind;
    uint32_t k0, k1, index, stream, thr;
    double p1, p2;
} Gen;

/* Elements start .. start+n-1 of kind g->kind into out (uint32, float32 or float64 by kind). */
static void fill(const Gen *g, void *out, uint64_t start, size_t n) {
    uint32_t w[2 * NB > 4 * BATCH ? 2 * NB : 4 * BATCH];
    const size_t CH = 4 * BATCH;
    if (g->kind == K_NORMAL || g->kind == K_NORMAL64) {
        double x[2 * NB];
        uint64_t pair = start >> 1, end = start + n;
        while (2 * pair < end) {
            uint64_t np = ((end + 1) >> 1) - pair;
            if (np > NB) np = NB;
            words(w, 2 * pair, (size_t)(2 * np), g->k0, g->k1, g->index, g->stream);
            box_muller(w, x, (size_t)np);
            uint64_t lo = 2 * pair < start ? start : 2 * pair, hi = 2 * (pair + np) > end ? end : 2 * (pair + np);
            if (g->kind == K_NORMAL) {
                float *o = (float *)out - start;
                for (uint64_t el = lo; el < hi; el++) {
                    double v = x[el - 2 * pair] * g->p1;
                    o[el] = (float)v;
                }
            } else {
                double *o = (double *)out - start;
                for (uint64_t el = lo; el < hi; el++) o[el] = x[el - 2 * pair];
            }
            pair += np;
        }
        return;
    }
    for (size_t pos = 0; pos < n; pos += CH) {
        size_t m = n - pos < CH ? n - pos : CH;
        if (g->kind == K_WORDS) {
            words((uint32_t *)out + pos, start + pos, m, g->k0, g->k1, g->index, g->stream);
            continue;
        }
        words(w, start + pos, m, g->k0, g->k1, g->index, g->stream);
        if (g->kind == K_SIGNED) {
            float fp = (float)g->p1, fn = (float)g->p2;
            float *o = (float *)out + pos;
            for (size_t j = 0; j < m; j++) o[j] = (w[j] >> 8) < g->thr ? fp : fn;
        } else if (g->kind == K_UNIFORM64) {
            double *o = (double *)out + pos;
            for (size_t j = 0; j < m; j++) o[j] = (double)(w[j] >> 8) * 0x1p-24;
        } else {
            float *o = (float *)out + pos;
            for (size_t j = 0; j < m; j++) {
                double u = (double)(w[j] >> 8) * 0x1p-24, v;
                if (g->kind == K_UNIFORM) {
                    v = u;
                } else if (g->kind == K_KAIMING_UNIFORM) {
                    v = u * 2.0;
                    v = v - 1.0;
                    v = v * g->p1;
                } else { /* K_SCORES: p2 - u * p1 */
                    v = u * g->p1;
                    v = g->p2 - v;
                }
                o[j] = (float)v;
            }
        }
    }
}

static const int ITEMSIZE[K_COUNT] = {4, 4, 4, 4, 4, 4, 8, 8};

static int get_buffer(PyObject *obj, Py_buffer *view, int writable) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) return -1;
    return 0;
}

/* fill(out, kind, seed, index, stream, start, p1, p2, thr) */
static PyObject *py_fill(PyObject *self, PyObject *args) {
    PyObject *obj;
    Gen g;
    unsigned long long seed, start;
    unsigned int index, stream, thr;
    if (!PyArg_ParseTuple(args, "OiKIIKddI", &obj, &g.kind, &seed, &index, &stream, &start, &g.p1, &g.p2, &thr))
        return NULL;
    if (g.kind < 0 || g.kind >= K_COUNT) {
        PyErr_SetString(PyExc_ValueError, "unknown kind");
        return NULL;
    }
    Py_buffer view;
    if (get_buffer(obj, &view, 1) < 0) return NULL;
    if (view.len % ITEMSIZE[g.kind]) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "buffer length is not a multiple of the item size");
        return NULL;
    }
    g.k0 = (uint32_t)seed;
    g.k1 = (uint32_t)(seed >> 32);
    g.index = index;
    g.stream = stream;
    g.thr = thr;
    size_t n = (size_t)view.len / ITEMSIZE[g.kind];
    Py_BEGIN_ALLOW_THREADS
    fill(&g, view.buf, start, n);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

/* apply(w, bits, flip): in place on float32 w; mask (flip=0): +0.0 where bits == 0; flip: -w where bits. */
static PyObject *py_apply(PyObject *self, PyObject *args) {
    PyObject *wo, *bo;
    int flip;
    if (!PyArg_ParseTuple(args, "OOp", &wo, &bo, &flip)) return NULL;
    Py_buffer wv, bv;
    if (get_buffer(wo, &wv, 1) < 0) return NULL;
    if (get_buffer(bo, &bv, 0) < 0) {
        PyBuffer_Release(&wv);
        return NULL;
    }
    if (wv.len % 4 || (size_t)bv.len != (size_t)wv.len / 4) {
        PyBuffer_Release(&wv);
        PyBuffer_Release(&bv);
        PyErr_SetString(PyExc_ValueError, "apply: need float32 weights and one byte of bits per weight");
        return NULL;
    }
    size_t n = (size_t)bv.len;
    uint32_t *w = (uint32_t *)wv.buf; /* sign and zero by bit operations: exactly np.negative / +0.0 */
    const uint8_t *b = (const uint8_t *)bv.buf;
    Py_BEGIN_ALLOW_THREADS
    if (flip) {
        for (size_t i = 0; i < n; i++) w[i] ^= (uint32_t)(b[i] != 0) << 31;
    } else {
        for (size_t i = 0; i < n; i++) w[i] &= (uint32_t)0 - (uint32_t)(b[i] != 0);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&wv);
    PyBuffer_Release(&bv);
    Py_RETURN_NONE;
}

/* key_counts(g, counts): counts[key] += 1 for key = (float32 bits of |g|) >> 16 (cpk.md 7.2); counts uint64[65536]. */
static PyObject *py_key_counts(PyObject *self, PyObject *args) {
    PyObject *go, *co;
    if (!PyArg_ParseTuple(args, "OO", &go, &co)) return NULL;
    Py_buffer gv, cv;
    if (get_buffer(go, &gv, 0) < 0) return NULL;
    if (get_buffer(co, &cv, 1) < 0) {
        PyBuffer_Release(&gv);
        return NULL;
    }
    if (gv.len % 4 || cv.len != 65536 * 8) {
        PyBuffer_Release(&gv);
        PyBuffer_Release(&cv);
        PyErr_SetString(PyExc_ValueError, "key_counts: need float32 values and uint64[65536] counts");
        return NULL;
    }
    size_t n = (size_t)gv.len / 4;
    const uint32_t *g = (const uint32_t *)gv.buf;
    uint64_t *c = (uint64_t *)cv.buf;
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < n; i++) c[(g[i] & 0x7FFFFFFFu) >> 16]++;
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&gv);
    PyBuffer_Release(&cv);
    Py_RETURN_NONE;
}

/* scatter(g, src, dst, pos, inverse): the stable counting sort by key of g, one chunk at a time.
 * pos (uint64[65536]) holds the next output position of each key and is advanced in place.
 * forward: dst[pos[key_i]++] = src[i]; inverse: dst[i] = src[pos[key_i]++]. src/dst are bytes. */
static PyObject *py_scatter(PyObject *self, PyObject *args) {
    PyObject *go, *so, *dout, *po;
    int inverse;
    if (!PyArg_ParseTuple(args, "OOOOp", &go, &so, &dout, &po, &inverse)) return NULL;
    Py_buffer gv, sv, dv, pv;
    if (get_buffer(go, &gv, 0) < 0) return NULL;
    if (get_buffer(so, &sv, 0) < 0) goto e1;
    if (get_buffer(dout, &dv, 1) < 0) goto e2;
    if (get_buffer(po, &pv, 1) < 0) goto e3;
    size_t n = (size_t)gv.len / 4;
    size_t big = inverse ? (size_t)sv.len : (size_t)dv.len, small = inverse ? (size_t)dv.len : (size_t)sv.len;
    if (gv.len % 4 || small != n || pv.len != 65536 * 8) {
        PyErr_SetString(PyExc_ValueError, "scatter: sizes do not match");
        goto e4;
    }
    const uint32_t *g = (const uint32_t *)gv.buf;
    const uint8_t *s = (const uint8_t *)sv.buf;
    uint8_t *d = (uint8_t *)dv.buf;
    uint64_t *p = (uint64_t *)pv.buf;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < n; i++) {
        uint64_t at = p[(g[i] & 0x7FFFFFFFu) >> 16]++;
        if (at >= big) {
            bad = 1;
            break;
        }
        if (inverse)
            d[i] = s[at];
        else
            d[at] = s[i];
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "scatter: position out of range");
        goto e4;
    }
    PyBuffer_Release(&pv);
    PyBuffer_Release(&dv);
    PyBuffer_Release(&sv);
    PyBuffer_Release(&gv);
    Py_RETURN_NONE;
e4:
    PyBuffer_Release(&pv);
e3:
    PyBuffer_Release(&dv);
e2:
    PyBuffer_Release(&sv);
e1:
    PyBuffer_Release(&gv);
    return NULL;
}

/* set_constants(sin_coeffs, cos_coeffs, ln2_hi, ln2_lo, two_pi_2m24): the reference's float64 constants. */
static PyObject *py_set_constants(PyObject *self, PyObject *args) {
    PyObject *so, *co;
    if (!PyArg_ParseTuple(args, "OOddd", &so, &co, &LN2_HI, &LN2_LO, &TWO_PI_2M24)) return NULL;
    for (int i = 0; i < 9; i++) {
        PyObject *a = PySequence_GetItem(so, i), *b = PySequence_GetItem(co, i);
        if (!a || !b) {
            Py_XDECREF(a);
            Py_XDECREF(b);
            return NULL;
        }
        SIN_C[i] = PyFloat_AsDouble(a);
        COS_C[i] = PyFloat_AsDouble(b);
        Py_DECREF(a);
        Py_DECREF(b);
    }
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

static PyObject *py_log_coeffs(PyObject *self, PyObject *noargs) {
    PyObject *t = PyTuple_New(11);
    if (!t) return NULL;
    for (int i = 0; i < 11; i++) PyTuple_SET_ITEM(t, i, PyFloat_FromDouble(LOG_C[i]));
    return t;
}

static PyMethodDef methods[] = {
    {"fill", py_fill, METH_VARARGS, "fill(out, kind, seed, index, stream, start, p1, p2, thr)"},
    {"apply", py_apply, METH_VARARGS, "apply(w, bits, flip): mask or flip float32 w in place"},
    {"key_counts", py_key_counts, METH_VARARGS, "key_counts(g, counts): histogram of the |G| order key"},
    {"scatter", py_scatter, METH_VARARGS, "scatter(g, src, dst, pos, inverse): counting-sort step by |G| key"},
    {"set_constants", py_set_constants, METH_VARARGS, "set the float64 constants of the sin/cos programs"},
    {"log_coeffs", py_log_coeffs, METH_NOARGS, "the ln program's coefficients as compiled (checked at import)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rngc", "connpack's compiled weight generator", -1,
                                    methods};

PyMODINIT_FUNC PyInit__rngc(void) { return PyModule_Create(&module); }
