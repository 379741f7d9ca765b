/* Compiled verifiers for hotword retrieval (setup.py builds this as an optional extension; the numpy code stays as
 * the fallback and the reference, and tests check that both give identical results):
 *
 * align: the same edit-distance alignment as verify.align_scores_numpy, one (entry, text) pair at a time, each
 * stopped at its own entry length.
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
        if (m > M) { /* cannot happen through verify.align_scores; never "done" in the numpy code either */
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

/* keyword(costs, states, skip, nstates, lo, hi, limit, out_cost, out_first, out_last, C, S, T, W)
 *   the CTC keyword DP of ctc_score.keyword_costs_numpy, one entry at a time over its own frames [lo, hi):
 *   costs float32 (T, W) frame costs; states int64 (C, S) cost columns of each path's states (PAD = -1 past
 *   nstates); skip uint8 (C, S): state s may be entered from s - 2; nstates, lo, hi int64 (C,); limit float32
 *   (C,): a partial path costing more becomes BIG (so only the states up to two past the furthest one below BIG
 *   are computed: the others are BIG anyway)
 *   out_cost float32 (C,) (BIG where no path fits), out_first / out_last int64 (C,) frames (-1 where none)
 * Same float32 operations in the same order and the same tie-breaking as the numpy code: predecessors stay,
 * s - 1, s - 2 (a later one only when strictly cheaper); state 0 starts afresh at every frame (keeping its first
 * frame while staying costs nothing); the earliest end frame wins among equal costs. */
static PyObject *keyword(PyObject *self, PyObject *args) {
    Py_buffer bc, bs, bk, bn, blo, bhi, blim, boc, bof, bol;
    Py_ssize_t C, S, T, W;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*w*w*w*nnnn", &bc, &bs, &bk, &bn, &blo, &bhi, &blim, &boc, &bof, &bol,
                          &C, &S, &T, &W))
        return NULL;
    PyObject *result = NULL;
    float *d = NULL, *nd = NULL;
    int64_t *st = NULL, *nst = NULL;
    int ok = need(&bc, T * W * 4, "costs") && need(&bs, C * S * 8, "states") && need(&bk, C * S, "skip") &&
             need(&bn, C * 8, "nstates") && need(&blo, C * 8, "lo") && need(&bhi, C * 8, "hi") &&
             need(&blim, C * 4, "limit") && need(&boc, C * 4, "out_cost") && need(&bof, C * 8, "out_first") &&
             need(&bol, C * 8, "out_last");
    if (!ok)
        goto kdone;
    const float *costs = bc.buf, *limit = blim.buf;
    const int64_t *states = bs.buf, *nstates = bn.buf, *lo = blo.buf, *hi = bhi.buf;
    const unsigned char *skip = bk.buf;
    float *out_cost = boc.buf;
    int64_t *out_first = bof.buf, *out_last = bol.buf;
    Py_ssize_t cap = S > 0 ? S : 1;
    d = malloc(sizeof(float) * cap);
    nd = malloc(sizeof(float) * cap);
    st = malloc(sizeof(int64_t) * cap);
    nst = malloc(sizeof(int64_t) * cap);
    if (!d || !nd || !st || !nst) {
        PyErr_NoMemory();
        goto kdone;
    }
    for (Py_ssize_t c = 0; c < C; c++) { /* validate before releasing the GIL */
        const int64_t *cls = states + c * S;
        if (lo[c] < 0) {
            PyErr_Format(PyExc_ValueError, "lo[%zd] = %lld is negative", c, (long long)lo[c]);
            goto kdone;
        }
        if (nstates[c] > S || nstates[c] < 0) {
            PyErr_Format(PyExc_ValueError, "nstates[%zd] = %lld outside [0, %zd]", c, (long long)nstates[c], S);
            goto kdone;
        }
        for (Py_ssize_t s = 0; s < nstates[c]; s++)
            if (cls[s] < 0 || cls[s] >= W) {
                PyErr_Format(PyExc_ValueError, "states[%zd, %zd] = %lld outside the %zd cost columns", c, s,
                             (long long)cls[s], W);
                goto kdone;
            }
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t c = 0; c < C; c++) {
        const int64_t *cls = states + c * S;
        const unsigned char *sk = skip + c * S;
        Py_ssize_t n = (Py_ssize_t)nstates[c];
        int64_t t0 = lo[c], t1 = hi[c] < T ? hi[c] : T;
        float best = BIG, lim = limit[c];
        int64_t first = -1, last = -1;
        if (n > 0) {
            for (Py_ssize_t s = 0; s < n; s++) {
                d[s] = nd[s] = BIG;
                st[s] = nst[s] = 0;
            }
            Py_ssize_t reach = -1, written = -1; /* the furthest state below BIG after the previous frame; the
                                                    furthest state either buffer holds a value for */
            for (int64_t t = t0; t < t1; t++) {
                const float *row = costs + (t < T - 1 ? t : T - 1) * W;
                Py_ssize_t top = reach + 2 < n - 1 ? reach + 2 : n - 1, new_reach = -1;
                for (Py_ssize_t s = 0; s <= top; s++) {
                    float m;
                    int64_t ms;
                    if (s == 0) {
                        m = 0.0f;
                        ms = d[0] <= 0.0f ? st[0] : t;
                    } else {
                        m = d[s];
                        ms = st[s];
                        if (d[s - 1] < m) {
                            m = d[s - 1];
                            ms = st[s - 1];
                        }
                        if (s >= 2 && sk[s] && d[s - 2] < m) {
                            m = d[s - 2];
                            ms = st[s - 2];
                        }
                    }
                    float v = m + row[cls[s]];
                    if (!(v < BIG) || v > lim)
                        v = BIG;
                    nd[s] = v;
                    nst[s] = ms;
                    if (v < BIG)
                        new_reach = s;
                }
                /* states past top are BIG (all their predecessors were): clear what an earlier frame left there */
                for (Py_ssize_t s = top + 1; s <= written; s++)
                    nd[s] = BIG;
                if (top > written)
                    written = top;
                float *tf = d;
                d = nd;
                nd = tf;
                int64_t *ti = st;
                st = nst;
                nst = ti;
                reach = new_reach;
                if (d[n - 1] < best) {
                    best = d[n - 1];
                    first = st[n - 1];
                    last = t;
                }
            }
        }
        out_cost[c] = best;
        out_first[c] = first;
        out_last[c] = last;
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
kdone:
    free(d);
    free(nd);
    free(st);
    free(nst);
    PyBuffer_Release(&bc);
    PyBuffer_Release(&bs);
    PyBuffer_Release(&bk);
    PyBuffer_Release(&bn);
    PyBuffer_Release(&blo);
    PyBuffer_Release(&bhi);
    PyBuffer_Release(&blim);
    PyBuffer_Release(&boc);
    PyBuffer_Release(&bof);
    PyBuffer_Release(&bol);
    return result;
}

PyObject *trie_keyword(PyObject *self, PyObject *args); /* _trie.c */

static PyMethodDef methods[] = {
    {"align", align, METH_VARARGS, "Edit cost of each entry against the best prefix of its text (see verify.py)."},
    {"keyword", keyword, METH_VARARGS, "CTC keyword cost of each entry in its frame window (see ctc_score.py)."},
    {"trie_keyword", trie_keyword, METH_VARARGS, "Entries found by token passing over a phoneme trie (see trie.py)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_align", NULL, -1, methods};

PyMODINIT_FUNC PyInit__align(void) { return PyModule_Create(&module); }
