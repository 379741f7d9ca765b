/* Token passing over a phoneme prefix trie (trie.py's trie_keyword_search; built into the _align extension).
 *
 * trie_keyword(costs, label, child, depth, maxlen, final, limit_of_len, T, W, nodes, blank, boundary, rate, slack,
 *              nparts, part)
 *   costs float32 (T, W): frame costs, the separator in column W - 1
 *   label uint8 (nodes,), child int32 (nodes + 1,), depth uint8 (nodes,), maxlen uint8 (nodes,),
 *   final uint8 (nodes,): the trie (trie.PhonemeTrie); limit_of_len float32 (256,)
 *   nparts, part: paths start only at the root's children k with k % nparts == part (paths never cross between
 *   the root's subtrees, so the parts of one search can run on several threads and their hits are disjoint)
 * returns (nodes int64, cost float32, first int64, last int64) as bytes: every terminal node reached within its
 * limit, with its cheapest path (the earliest on ties). Same float32 operations and tie-breaking as
 * trie._search_numpy, so the results are identical.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { ST_P = 0, ST_G = 1, ST_S = 2 };

typedef struct {
    int64_t node, start;
    float cost;
    int8_t state;
} Token;

typedef struct {
    Token *tok;
    Py_ssize_t n, cap;
    int64_t *slot_of; /* hash table: key -> index + 1 (0 empty) */
    int64_t *keys;
    Py_ssize_t mask;
    int64_t *used;
    Py_ssize_t nused;
} Frame;

typedef struct {
    const float *limit_of_len;
    const uint8_t *maxlen, *depth;
    float rate, slack;
} Bound;

static int frame_init(Frame *f) {
    f->cap = 1024;
    f->n = 0;
    f->tok = malloc(sizeof(Token) * f->cap);
    f->mask = 4096 - 1;
    f->slot_of = calloc(f->mask + 1, sizeof(int64_t));
    f->keys = malloc(sizeof(int64_t) * (f->mask + 1));
    f->used = malloc(sizeof(int64_t) * (f->mask + 1));
    f->nused = 0;
    return f->tok && f->slot_of && f->keys && f->used;
}

static void frame_free(Frame *f) {
    free(f->tok);
    free(f->slot_of);
    free(f->keys);
    free(f->used);
}

static void frame_clear(Frame *f) {
    for (Py_ssize_t i = 0; i < f->nused; i++)
        f->slot_of[f->used[i]] = 0;
    f->nused = 0;
    f->n = 0;
}

static int frame_grow_table(Frame *f) {
    Py_ssize_t size = (f->mask + 1) * 2;
    int64_t *slot_of = calloc(size, sizeof(int64_t)), *keys = malloc(sizeof(int64_t) * size),
            *used = malloc(sizeof(int64_t) * size);
    if (!slot_of || !keys || !used) {
        free(slot_of);
        free(keys);
        free(used);
        return 0;
    }
    Py_ssize_t nused = 0;
    for (Py_ssize_t i = 0; i < f->n; i++) {
        int64_t key = f->tok[i].node * 3 + f->tok[i].state;
        Py_ssize_t h = (Py_ssize_t)((uint64_t)key * 0x9E3779B97F4A7C15ull >> 20) & (size - 1);
        while (slot_of[h])
            h = (h + 1) & (size - 1);
        slot_of[h] = i + 1;
        keys[h] = key;
        used[nused++] = h;
    }
    free(f->slot_of);
    free(f->keys);
    free(f->used);
    f->slot_of = slot_of;
    f->keys = keys;
    f->used = used;
    f->nused = nused;
    f->mask = size - 1;
    return 1;
}

/* The slot of `key` in f's table: where it is, or the empty slot where it goes. */
static Py_ssize_t find_slot(const Frame *f, int64_t key) {
    Py_ssize_t h = (Py_ssize_t)((uint64_t)key * 0x9E3779B97F4A7C15ull >> 20) & f->mask;
    while (f->slot_of[h] && f->keys[h] != key)
        h = (h + 1) & f->mask;
    return h;
}

/* Room for one more key (call before find_slot: growing the table moves the slots). */
static int make_room(Frame *f) {
    if ((f->nused + 1) * 2 > f->mask + 1 && !frame_grow_table(f))
        return 0;
    if (f->n == f->cap) {
        Token *grown = realloc(f->tok, sizeof(Token) * f->cap * 2);
        if (!grown)
            return 0;
        f->tok = grown;
        f->cap *= 2;
    }
    return 1;
}

/* Put `tok` under `key` into the empty slot `h` (from find_slot after make_room). */
static void add_at(Frame *f, Py_ssize_t h, int64_t key, Token tok) {
    f->tok[f->n] = tok;
    f->slot_of[h] = ++f->n;
    f->keys[h] = key;
    f->used[f->nused++] = h;
}

/* Add (node, state) at `cost`, keeping the cheapest (then earliest-starting) token per (node, state); 0 when out
 * of memory. */
static int push(Frame *f, const Bound *b, int64_t node, int8_t state, float cost, int64_t start) {
    float bound = b->rate * (float)b->depth[node] + b->slack;
    float lim = b->limit_of_len[b->maxlen[node]];
    if (lim < bound)
        bound = lim;
    if (!(cost <= bound + 1e-4f))
        return 1;
    if (!make_room(f))
        return 0;
    int64_t key = node * 3 + state;
    Py_ssize_t h = find_slot(f, key);
    if (f->slot_of[h]) {
        Token *t = &f->tok[f->slot_of[h] - 1];
        if (cost < t->cost || (cost == t->cost && start < t->start)) {
            t->cost = cost;
            t->start = start;
        }
    } else {
        add_at(f, h, key, (Token){node, start, cost, state});
    }
    return 1;
}

/* The hit index of terminal node `node` in `found` (keyed as its P state; the token's start holds it), or -1. */
static Py_ssize_t lookup(const Frame *f, int64_t node) {
    Py_ssize_t h = find_slot(f, node * 3);
    return f->slot_of[h] ? (Py_ssize_t)f->tok[f->slot_of[h] - 1].start : -1;
}

static int insert(Frame *f, int64_t node, Py_ssize_t index) {
    if (!make_room(f))
        return 0;
    add_at(f, find_slot(f, node * 3), node * 3, (Token){node, (int64_t)index, 0.0f, 0});
    return 1;
}

typedef struct {
    int64_t *node, *first, *last;
    float *cost;
    Py_ssize_t n, cap;
} Hits;

static int hits_add(Hits *h, int64_t node, float cost, int64_t first, int64_t last) {
    if (h->n == h->cap) {
        Py_ssize_t cap = h->cap ? h->cap * 2 : 256;
        int64_t *a = realloc(h->node, sizeof(int64_t) * cap);
        if (a) h->node = a;
        int64_t *b = realloc(h->first, sizeof(int64_t) * cap);
        if (b) h->first = b;
        int64_t *c = realloc(h->last, sizeof(int64_t) * cap);
        if (c) h->last = c;
        float *d = realloc(h->cost, sizeof(float) * cap);
        if (d) h->cost = d;
        if (!a || !b || !c || !d)
            return 0;
        h->cap = cap;
    }
    h->node[h->n] = node;
    h->cost[h->n] = cost;
    h->first[h->n] = first;
    h->last[h->n] = last;
    h->n++;
    return 1;
}

PyObject *trie_keyword(PyObject *self, PyObject *args) {
    Py_buffer bc, bl, bch, bd, bm, bt, blim;
    Py_ssize_t T, W, N, nparts, part;
    long blank, boundary;
    double rate, slack;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*nnnllddnn", &bc, &bl, &bch, &bd, &bm, &bt, &blim, &T, &W, &N, &blank,
                          &boundary, &rate, &slack, &nparts, &part))
        return NULL;
    PyObject *result = NULL;
    Frame cur = {0}, next = {0};
    Hits hits = {0};
    Frame found = {0}; /* terminal nodes reached: token.start holds the node's index in hits */
    int bad = 0;
    if (bc.len < T * W * 4 || bl.len < N || bch.len < (N + 1) * 4 || bd.len < N || bm.len < N ||
        bt.len < N || blim.len < 256 * 4 || N < 1 || W < 2 || blank < 0 || blank >= W - 1 || nparts < 1 ||
        part < 0 || part >= nparts) {
        PyErr_SetString(PyExc_ValueError, "trie_keyword: inconsistent buffer sizes or classes");
        goto done;
    }
    const float *costs = bc.buf;
    const uint8_t *label = bl.buf;
    const int32_t *child = bch.buf;
    const uint8_t *final = bt.buf;
    Bound bound = {blim.buf, bm.buf, bd.buf, (float)rate, (float)slack};
    if (!frame_init(&cur) || !frame_init(&next) || !frame_init(&found)) {
        PyErr_NoMemory();
        goto done;
    }
    int oom = 0;
    Py_BEGIN_ALLOW_THREADS
    int64_t sep = W - 1;
    for (Py_ssize_t t = 0; t < T && !oom && !bad; t++) {
        const float *c = costs + t * W;
        frame_clear(&next);
#define PUSH(nd, st, cs, sr)                                                                                          \
    do {                                                                                                               \
        int64_t n_ = (nd);                                                                                             \
        int8_t s_ = (st);                                                                                              \
        int64_t cls_ = s_ == ST_P ? (int64_t)label[n_] : (s_ == ST_G ? blank : sep);                                   \
        if (cls_ >= W) { bad = 1; break; }                                                                             \
        if (!push(&next, &bound, n_, s_, (cs) + c[cls_], (sr))) { oom = 1; break; }                                    \
    } while (0)
        for (Py_ssize_t i = 0; i < cur.n && !oom && !bad; i++) {
            Token tk = cur.tok[i];
            int64_t n = tk.node;
            PUSH(n, tk.state, tk.cost, tk.start); /* stay */
            int64_t k0 = child[n], k1 = child[n + 1];
            if (k0 < 0 || k1 > N || k0 > k1) { bad = 1; break; }
            if (tk.state == ST_P && k1 > k0)
                PUSH(n, ST_G, tk.cost, tk.start);
            for (int64_t k = k0; k < k1 && !oom && !bad; k++) {
                if (label[k] == boundary) {
                    if (tk.state != ST_P)
                        continue;
                    PUSH(k, ST_S, tk.cost, tk.start);
                    int64_t g0 = child[k], g1 = child[k + 1];
                    if (g0 < 0 || g1 > N || g0 > g1) { bad = 1; break; }
                    for (int64_t g = g0; g < g1 && !oom && !bad; g++) /* skipping the separator */
                        if (label[g] != label[n])
                            PUSH(g, ST_P, tk.cost, tk.start);
                } else if (tk.state != ST_P || label[k] != label[n]) {
                    PUSH(k, ST_P, tk.cost, tk.start);
                }
            }
        }
        if (child[0] < 0 || child[1] > N) bad = 1;
        for (int64_t k = child[0]; k < child[1] && !oom && !bad; k++) /* fresh starts */
            if (label[k] != boundary && k % nparts == part)
                PUSH(k, ST_P, 0.0f, (int64_t)t);
#undef PUSH
        for (Py_ssize_t i = 0; i < next.n && !oom && !bad; i++) {
            Token *tk = &next.tok[i];
            int64_t n = tk->node;
            if (tk->state != ST_P || !final[n])
                continue;
            if (!(tk->cost <= bound.limit_of_len[bound.depth[n]] + 1e-4f))
                continue;
            Py_ssize_t at = lookup(&found, n);
            if (at < 0) {
                if (!hits_add(&hits, n, tk->cost, tk->start, t) || !insert(&found, n, hits.n - 1)) { oom = 1; break; }
            } else if (tk->cost < hits.cost[at]) {
                hits.cost[at] = tk->cost;
                hits.first[at] = tk->start;
                hits.last[at] = t;
            }
        }
        Frame swap = cur;
        cur = next;
        next = swap;
    }
    Py_END_ALLOW_THREADS
    if (oom) {
        PyErr_NoMemory();
        goto done;
    }
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "trie_keyword: the trie's arrays are inconsistent");
        goto done;
    }
    if (hits.n == 0) /* y# of a NULL pointer is None */
        result = Py_BuildValue("(y#y#y#y#)", "", 0, "", 0, "", 0, "", 0);
    else
        result = Py_BuildValue("(y#y#y#y#)", (const char *)hits.node, hits.n * 8, (const char *)hits.cost,
                               hits.n * 4, (const char *)hits.first, hits.n * 8, (const char *)hits.last, hits.n * 8);
done:
    frame_free(&cur);
    frame_free(&next);
    free(hits.node);
    free(hits.cost);
    free(hits.first);
    free(hits.last);
    frame_free(&found);
    PyBuffer_Release(&bc);
    PyBuffer_Release(&bl);
    PyBuffer_Release(&bch);
    PyBuffer_Release(&bd);
    PyBuffer_Release(&bm);
    PyBuffer_Release(&bt);
    PyBuffer_Release(&blim);
    return result;
}
