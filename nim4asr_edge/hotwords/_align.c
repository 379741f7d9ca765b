/* Compiled verifier for hotword retrieval: the same edit-distance alignment as embed.align_scores (numpy), one
 * (entry, text) pair at a time, each stopped at its own entry length. embed.align_scores uses it when it was built
 * (setup.py builds it as an optional extension) and keeps the numpy code as the fallback and the reference.
 *
 * align(entries, texts, entry_len, text_len, final, sub_cost, out_cost, out_len, C, M, N, V, boundary, word_end)
 *   entries int64 (C, M), texts int64 (C, N): symbol ids, PAD = -1 past each length
 *   entry_len, text_len int64 (C,); final uint8 (C,): the text is the rest of the hypothesis
 *   sub_cost float32 (V + 1, V + 1), or an empty buffer for unit costs (V ignored)
 *   out_cost float32 (C,), out_len int64 (C,)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

#define BIG 1e9f

static int need(Py_buffer *b, Py_ssize_t bytes, const char *name) {
    if (b->len < bytes) {
        PyErr_Format(PyExc_ValueError, "%s: buffer of %zd bytes, need %zd", name, b->len, bytes);
        return 0;
    }
    return 1;
}

static PyObject *align(PyObject *self, PyObject *args) {
    Py_buffer be, bt, bel, btl, bf, bs, boc, bol;
    Py_ssize_t C, M, N, V;
    long boundary;
    int word_end;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*w*w*nnnnlp", &be, &bt, &bel, &btl, &bf, &bs, &boc, &bol, &C, &M, &N,
                          &V, &boundary, &word_end))
        return NULL;
    PyObject *result = NULL;
    float *prev = NULL, *cur = NULL;
    unsigned char *valid = NULL;
    int ok = need(&be, C * M * 8, "entries") && need(&bt, C * N * 8, "texts") && need(&bel, C * 8, "entry_len") &&
             need(&btl, C * 8, "text_len") && need(&bf, C, "final") && need(&boc, C * 4, "out_cost") &&
             need(&bol, C * 8, "out_len") && (bs.len == 0 || need(&bs, (V + 1) * (V + 1) * 4, "sub_cost"));
    if (!ok)
        goto done;
    const int64_t *entries = be.buf, *texts = bt.buf, *elen = bel.buf, *tlen = btl.buf;
    const unsigned char *final = bf.buf;
    const float *sub = bs.len ? (const float *)bs.buf : NULL;
    float *out_cost = boc.buf;
    int64_t *out_len = bol.buf;
    prev = malloc(sizeof(float) * (N + 1));
    cur = malloc(sizeof(float) * (N + 1));
    valid = malloc(N + 1);
    if (!prev || !cur || !valid) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t c = 0; c < C; c++) {
        const int64_t *e = entries + c * M, *t = texts + c * N;
        Py_ssize_t m = (Py_ssize_t)elen[c], n = N, tl = (Py_ssize_t)tlen[c];
        if (m <= 0) {
            out_cost[c] = 0.0f;
            out_len[c] = 0;
            continue;
        }
        if (m > M) { /* cannot happen through embed.align_scores; never "done" in the numpy code either */
            out_cost[c] = BIG;
            out_len[c] = 0;
            continue;
        }
        /* valid ends, as in the numpy code: j <= text_len, and with word_end: text[j] is a boundary (j < N), the
         * last column when text[N-1] is one, or the text's end when it is final */
        for (Py_ssize_t j = 0; j <= n; j++) {
            unsigned char v = j <= tl;
            if (word_end) {
                unsigned char at = j < n ? t[j] == boundary : (n > 0 && t[n - 1] == boundary);
                if (final[c] && j == (tl < n ? tl : n))
                    at = 1;
                v = v && at;
            }
            valid[j] = v;
        }
        prev[0] = 0.0f;
        for (Py_ssize_t j = 1; j <= n; j++) {
            int64_t s = t[j - 1];
            prev[j] = prev[j - 1] + (s == boundary ? 0.5f : (s < 0 ? 0.0f : 1.0f));
        }
        for (Py_ssize_t i = 1; i <= m; i++) {
            int64_t a = e[i - 1];
            float del = a == boundary ? 0.5f : 1.0f;
            const float *srow = sub ? sub + (a < 0 ? V : a) * (V + 1) : NULL;
            cur[0] = prev[0] + del;
            for (Py_ssize_t j = 1; j <= n; j++) {
                int64_t s = t[j - 1];
                float sc = s < 0 ? BIG : (srow ? srow[s] : (s != a ? 1.0f : 0.0f));
                float best = prev[j - 1] + sc, up = prev[j] + del;
                float ins = cur[j - 1] + (s == boundary ? 0.5f : (s < 0 ? 0.0f : 1.0f));
                if (up < best)
                    best = up;
                if (ins < best)
                    best = ins;
                cur[j] = best;
            }
            float *tmp = prev;
            prev = cur;
            cur = tmp;
        }
        float best = BIG;
        int64_t best_j = 0;
        for (Py_ssize_t j = 0; j <= n; j++) {
            if (valid[j] && prev[j] < best) {
                best = prev[j];
                best_j = j;
            }
        }
        out_cost[c] = best;
        out_len[c] = best_j;
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(prev);
    free(cur);
    free(valid);
    PyBuffer_Release(&be);
    PyBuffer_Release(&bt);
    PyBuffer_Release(&bel);
    PyBuffer_Release(&btl);
    PyBuffer_Release(&bf);
    PyBuffer_Release(&bs);
    PyBuffer_Release(&boc);
    PyBuffer_Release(&bol);
    return result;
}

static PyMethodDef methods[] = {
    {"align", align, METH_VARARGS, "Edit cost of each entry against the best prefix of its text (see embed.py)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_align", NULL, -1, methods};

PyMODINIT_FUNC PyInit__align(void) { return PyModule_Create(&module); }
