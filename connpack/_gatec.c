/* connpack._gatec: the connectivity gates of connpack/layers.py fused into one pass each (CPU, float32).

   gate(out, w, t, flip)       out = w * 1[t > 0]                      (prune: torch.gt(t, 0) * w)
                               out = w + (-2 w) * 1[t < 0]             (flip: torch.addcmul(w, w, t < 0, value=-2))
   score_grad(g, w, pull)      g = g * w, then + pull unless pull is None

   Each expression is the one the torch reference computes, operation by operation, so every bit (signed zeros
   included) is the same; built with -ffp-contract=off so no multiply-add is fused. The reference needs two
   passes over the weights for each (a comparison written as 1.0/0.0, then the multiply); here it is one. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

/* An AVX2 copy of each loop beside the baseline one, chosen when the module loads (gcc on x86-64 Linux);
   the same IEEE operations either way, so the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

CLONES static void prune_loop(float *restrict o, const float *restrict w, const float *restrict t, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) o[i] = (float)(t[i] > 0.0f) * w[i];
}

/* written as separate statements: gcc 12 does not vectorise the one-line form */
CLONES static void flip_loop(float *restrict o, const float *restrict w, const float *restrict t, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        float m = (float)(t[i] < 0.0f);
        float d = -2.0f * w[i];
        o[i] = w[i] + d * m;
    }
}

CLONES static void grad_loop(float *restrict g, const float *restrict w, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) g[i] = g[i] * w[i];
}

CLONES static void grad_pull_loop(float *restrict g, const float *restrict w, float pull, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        float p = g[i] * w[i];
        g[i] = p + pull;
    }
}

static int float_buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t n, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) return -1;
    if (view->len != n * 4) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s: need %zd float32 values", what, n);
        return -1;
    }
    return 0;
}

static PyObject *py_gate(PyObject *self, PyObject *args) {
    PyObject *oo, *wo, *to;
    int flip;
    if (!PyArg_ParseTuple(args, "OOOp", &oo, &wo, &to, &flip)) return NULL;
    Py_buffer ov, wv, tv;
    if (PyObject_GetBuffer(oo, &ov, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) return NULL;
    Py_ssize_t n = ov.len / 4;
    if (ov.len % 4 || float_buffer(wo, &wv, 0, n, "gate weights") < 0) {
        if (ov.len % 4) PyErr_SetString(PyExc_ValueError, "gate: need float32 output");
        PyBuffer_Release(&ov);
        return NULL;
    }
    if (float_buffer(to, &tv, 0, n, "gate scores") < 0) {
        PyBuffer_Release(&ov);
        PyBuffer_Release(&wv);
        return NULL;
    }
    float *restrict o = (float *)ov.buf;
    const float *restrict w = (const float *)wv.buf, *restrict t = (const float *)tv.buf;
    Py_BEGIN_ALLOW_THREADS
    if (flip) flip_loop(o, w, t, n);
    else prune_loop(o, w, t, n);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&ov);
    PyBuffer_Release(&wv);
    PyBuffer_Release(&tv);
    Py_RETURN_NONE;
}

static PyObject *py_score_grad(PyObject *self, PyObject *args) {
    PyObject *go, *wo, *po;
    if (!PyArg_ParseTuple(args, "OOO", &go, &wo, &po)) return NULL;
    int has_pull = po != Py_None;
    float pull = has_pull ? (float)PyFloat_AsDouble(po) : 0.0f;
    if (has_pull && PyErr_Occurred()) return NULL;
    Py_buffer gv, wv;
    if (PyObject_GetBuffer(go, &gv, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) return NULL;
    Py_ssize_t n = gv.len / 4;
    if (gv.len % 4 || float_buffer(wo, &wv, 0, n, "score_grad weights") < 0) {
        if (gv.len % 4) PyErr_SetString(PyExc_ValueError, "score_grad: need float32 gradients");
        PyBuffer_Release(&gv);
        return NULL;
    }
    float *restrict g = (float *)gv.buf;
    const float *restrict w = (const float *)wv.buf;
    Py_BEGIN_ALLOW_THREADS
    if (has_pull) grad_pull_loop(g, w, pull, n);
    else grad_loop(g, w, n);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&gv);
    PyBuffer_Release(&wv);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"gate", py_gate, METH_VARARGS, "gate(out, w, t, flip): out = w * g(t) for prune (flip=False) or flip"},
    {"score_grad", py_score_grad, METH_VARARGS, "score_grad(g, w, pull): g = g * w (+ pull) in place"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gatec", "connpack's fused connectivity gates", -1,
                                    methods};

PyMODINIT_FUNC PyInit__gatec(void) { return PyModule_Create(&module); }
