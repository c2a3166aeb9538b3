/* OTLP ExportTraceServiceRequest (protobuf wire format) -> span-frame columns, natively.
 *
 * The collector's hot path. It reads the wire format directly (no message objects),
 * writes every column of the span frame as Arrow buffers, and runs without the GIL, so
 * request threads decode on every core while the kernel's main thread stays free.
 *
 * halo_nb.ingest.otlp.decode_protobuf_reference (Python, through frame_builder.SpanFrameBuilder) is the
 * definition of the frame; this is a faster implementation of the same rules, with the
 * attribute-name tables handed over from halo_nb.ingest.rules by configure(), and held equal
 * to the reference by tests/test_native_decoder.py. Anything outside the common path
 * (malformed or truncated bodies, invalid UTF-8, rejected spans, merged sub-messages,
 * non-integer token counts, ...) makes decode() return None: the reference decoder then
 * handles the request and reports any error in its words.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable byte buffers ------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static int buf_grow(buf_t *b, size_t extra) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_reserve(buf_t *b, size_t extra) {
    return b->len + extra <= b->cap ? 0 : buf_grow(b, extra);
}

static inline int buf_put(buf_t *b, const void *data, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static int buf_str(buf_t *b, const char *s) { return buf_put(b, s, strlen(s)); }

static inline int buf_char(buf_t *b, char c) {
    if (b->len == b->cap && buf_reserve(b, 1)) return -1;
    b->p[b->len++] = c;
    return 0;
}

static void buf_free(buf_t *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- results and failure ------------------------------------------------------------- */

/* Every helper returns OK or NATIVE_NO ("leave this request to the reference decoder");
   running out of memory is NATIVE_NOMEM. */
enum { OK = 0, NATIVE_NO = -1, NATIVE_NOMEM = -2 };
#define TRY(x)                   \
    do {                         \
        int rc_ = (x);           \
        if (rc_ != OK) return rc_; \
    } while (0)
#define MEM(x)                               \
    do {                                     \
        if ((x) != 0) return NATIVE_NOMEM;   \
    } while (0)

/* ---- protobuf wire format ------------------------------------------------------------ */

typedef struct {
    const uint8_t *p, *end;
} reader_t;

static int read_varint(reader_t *r, uint64_t *out) {
    uint64_t value = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return NATIVE_NO;
        uint8_t byte = *r->p++;
        value |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = value;
            return OK;
        }
    }
    return NATIVE_NO;
}

static int read_fixed64(reader_t *r, uint64_t *out) {
    if (r->end - r->p < 8) return NATIVE_NO;
    memcpy(out, r->p, 8); /* little-endian hosts (x86-64, aarch64) */
    r->p += 8;
    return OK;
}

typedef struct {
    const uint8_t *p;
    size_t len;
} bytes_t;

static int read_bytes(reader_t *r, bytes_t *out) {
    uint64_t n;
    TRY(read_varint(r, &n));
    if (n > (uint64_t)(r->end - r->p)) return NATIVE_NO;
    out->p = r->p;
    out->len = (size_t)n;
    r->p += n;
    return OK;
}

/* The next field: its number, wire type, and (for wire type 2) its bytes, or its
   integer value (wire types 0, 1, 5). Groups (3, 4) and invalid types are left to the
   reference. */
typedef struct {
    uint32_t number;
    int wire;
    bytes_t bytes;
    uint64_t value;
} field_t;

static int next_field(reader_t *r, field_t *f) {
    uint64_t tag;
    TRY(read_varint(r, &tag));
    f->number = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    if (f->number == 0 || tag >> 32) return NATIVE_NO;
    switch (f->wire) {
    case 0:
        return read_varint(r, &f->value);
    case 1:
        return read_fixed64(r, &f->value);
    case 2:
        return read_bytes(r, &f->bytes);
    case 5:
        if (r->end - r->p < 4) return NATIVE_NO;
        {
            uint32_t v;
            memcpy(&v, r->p, 4);
            f->value = v;
        }
        r->p += 4;
        return OK;
    default:
        return NATIVE_NO;
    }
}

/* A known field number arriving with another wire type: the reference decides. */
#define EXPECT(f, w)                             \
    do {                                         \
        if ((f).wire != (w)) return NATIVE_NO;   \
    } while (0)

/* Moves `r` on to the next occurrence of the length-delimited field `number`, skipping
   other fields: 1 with its bytes in *out, 0 (OK) at the end of the message, or a failure
   code. The loops over a repeated field end on a value below 1 and return or TRY it. */
static int next_bytes_of(reader_t *r, uint32_t number, bytes_t *out) {
    field_t f;
    out->p = NULL;
    out->len = 0;
    while (r->p < r->end) {
        TRY(next_field(r, &f));
        if (f.number != number) continue;
        EXPECT(f, 2);
        *out = f.bytes;
        return 1;
    }
    return 0;
}

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

static inline uint64_t load8(const uint8_t *s) {
    uint64_t w;
    memcpy(&w, s, 8);
    return w;
}

/* ---- keyed hashing --------------------------------------------------------------------- */

/* SipHash-1-3 (CPython's string hash) under a random key handed over by configure(), so a
   request cannot choose trace ids or attribute keys that collide in the decoder's hash
   tables and make them quadratic. */
static uint64_t HASH_K0, HASH_K1;

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define HALF_ROUND(a, b, c, d, s, t) \
    a += b;                          \
    c += d;                          \
    b = ROTL64(b, s) ^ a;            \
    d = ROTL64(d, t) ^ c;            \
    a = ROTL64(a, 32);
#define SIP_ROUND(v0, v1, v2, v3)            \
    HALF_ROUND(v0, v1, v2, v3, 13, 16);     \
    HALF_ROUND(v2, v1, v0, v3, 17, 21);

static uint64_t keyed_hash(const uint8_t *p, size_t n) {
    uint64_t v0 = HASH_K0 ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = HASH_K1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = HASH_K0 ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = HASH_K1 ^ UINT64_C(0x7465646279746573);
    uint64_t last = (uint64_t)n << 56;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t m = load8(p);
        v3 ^= m;
        SIP_ROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    for (size_t i = 0; i < n; i++) last |= (uint64_t)p[i] << (8 * i);
    v3 ^= last;
    SIP_ROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    return (v0 ^ v1) ^ (v2 ^ v3);
}

/* The length of the well-formed UTF-8 sequence that starts at s[i] (a byte >= 0x80),
   or 0: no overlongs, surrogates or code points beyond U+10FFFF, as protobuf checks. */
static size_t utf8_sequence(const uint8_t *s, size_t i, size_t n) {
    uint8_t c = s[i];
    size_t need;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (i + need >= n) return 0;
    for (size_t k = 1; k <= need; k++) {
        if ((s[i + k] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need + 1;
}

static int valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n && !(load8(s + i) & HIGHS)) i += 8;
        if (i >= n) break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = utf8_sequence(s, i, n);
        if (!len) return 0;
        i += len;
    }
    return 1;
}

/* ---- AnyValue ------------------------------------------------------------------------ */

enum { V_NONE, V_STR, V_BOOL, V_INT, V_DOUBLE, V_ARRAY, V_KVLIST, V_BYTES };

typedef struct {
    int type;
    bytes_t bytes; /* string, bytes, or the ArrayValue / KeyValueList message */
    int64_t i;
    double d;
} value_t;

static int validate_value(bytes_t msg, int depth);

/* Strings are checked for UTF-8 where they are written (json_string); a value a later
   field overrides is never written, so it is checked here. */
static int parse_value(bytes_t msg, value_t *v) {
    reader_t r = {msg.p, msg.p + msg.len};
    field_t f;
    int messages = 0, fields = 0;
    v->type = V_NONE;
    while (r.p < r.end) {
        TRY(next_field(&r, &f));
        if (f.number >= 1 && f.number <= 7 && ++fields == 2) TRY(validate_value(msg, 0));
        switch (f.number) {
        case 1:
            EXPECT(f, 2);
            v->type = V_STR;
            v->bytes = f.bytes;
            break;
        case 2:
            EXPECT(f, 0);
            v->type = V_BOOL;
            v->i = f.value != 0;
            break;
        case 3:
            EXPECT(f, 0);
            v->type = V_INT;
            v->i = (int64_t)f.value;
            break;
        case 4:
            EXPECT(f, 1);
            v->type = V_DOUBLE;
            memcpy(&v->d, &f.value, 8);
            break;
        case 5:
        case 6:
            EXPECT(f, 2);
            /* A repeated sub-message merges into the first: the reference's business. */
            if (++messages > 1) return NATIVE_NO;
            v->type = f.number == 5 ? V_ARRAY : V_KVLIST;
            v->bytes = f.bytes;
            break;
        case 7:
            EXPECT(f, 2);
            v->type = V_BYTES;
            v->bytes = f.bytes;
            break;
        default:
            break;
        }
    }
    return OK;
}

/* ---- key/value lists with Python dict semantics ------------------------------------ */

/* One attribute: its key and AnyValue (absent value = None). Duplicate keys keep the
   first position and the last value, as a dict built in order does. */
typedef struct {
    bytes_t key;
    bytes_t value; /* the AnyValue message */
    value_t parsed;
    int has_value;
} kv_t;

typedef struct {
    kv_t *items;
    size_t len, cap;
} kvstack_t;

/* Room for one more item in a growable array of `size`-byte items. */
static int grow_items(void **items, size_t len, size_t *cap, size_t size) {
    if (len < *cap) return OK;
    size_t more = *cap ? *cap * 2 : 16;
    void *grown = realloc(*items, more * size);
    if (!grown) return NATIVE_NOMEM;
    *items = grown;
    *cap = more;
    return OK;
}

static int kv_push(kvstack_t *s, kv_t kv) {
    TRY(grow_items((void **)&s->items, s->len, &s->cap, sizeof(kv_t)));
    s->items[s->len++] = kv;
    return OK;
}

static int parse_keyvalue(bytes_t msg, kv_t *kv) {
    reader_t r = {msg.p, msg.p + msg.len};
    field_t f;
    int values = 0;
    kv->key.p = (const uint8_t *)"";
    kv->key.len = 0;
    kv->has_value = 0;
    while (r.p < r.end) {
        TRY(next_field(&r, &f));
        if (f.number == 1) {
            EXPECT(f, 2);
            if (!valid_utf8(kv->key.p, kv->key.len)) return NATIVE_NO; /* overridden */
            kv->key = f.bytes;
        } else if (f.number == 2) {
            EXPECT(f, 2);
            if (++values > 1) return NATIVE_NO;
            kv->value = f.bytes;
            kv->has_value = 1;
        }
    }
    return OK;
}

static int same_key(bytes_t a, bytes_t b) {
    return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

/* Nesting is counted in protobuf messages below an attribute's AnyValue: an array level is
   two (ArrayValue, AnyValue), a map level three (KeyValueList, KeyValue, AnyValue). The
   reference's parser refuses a request nested more than 100 messages deep, and an
   attribute's AnyValue is at most 7 deep (request, ResourceSpans, ScopeSpans, Span, Event
   or Link, KeyValue, AnyValue), so deeper values are left to it. */
#define MAX_DEPTH (100 - 7)

/* Checks every string inside a KeyValue list (field `number` of `msg`), for the parts of
   a request that are parsed (and so UTF-8-checked) by the reference but never written. */
static int validate_kvs(bytes_t msg, uint32_t number, int depth) {
    reader_t r = {msg.p, msg.p + msg.len};
    bytes_t entry;
    int found;
    while ((found = next_bytes_of(&r, number, &entry)) == 1) {
        reader_t kr = {entry.p, entry.p + entry.len};
        field_t kf;
        while (kr.p < kr.end) {
            TRY(next_field(&kr, &kf));
            if (kf.number == 1) {
                EXPECT(kf, 2);
                if (!valid_utf8(kf.bytes.p, kf.bytes.len)) return NATIVE_NO;
            } else if (kf.number == 2) {
                EXPECT(kf, 2);
                TRY(validate_value(kf.bytes, depth));
            }
        }
    }
    return found;
}

static int validate_value(bytes_t msg, int depth) {
    if (depth > MAX_DEPTH) return NATIVE_NO;
    reader_t r = {msg.p, msg.p + msg.len};
    field_t f;
    while (r.p < r.end) {
        TRY(next_field(&r, &f));
        if (f.number == 1) {
            EXPECT(f, 2);
            if (!valid_utf8(f.bytes.p, f.bytes.len)) return NATIVE_NO;
        } else if (f.number == 5) {
            EXPECT(f, 2);
            reader_t ar = {f.bytes.p, f.bytes.p + f.bytes.len};
            bytes_t item;
            int found;
            while ((found = next_bytes_of(&ar, 1, &item)) == 1)
                TRY(validate_value(item, depth + 2));
            TRY(found);
        } else if (f.number == 6) {
            EXPECT(f, 2);
            TRY(validate_kvs(f.bytes, 1, depth + 3));
        }
    }
    return OK;
}

/* The keys of one list on the stack (from `base`), for finding an earlier duplicate: a
   short list is scanned, a longer one (over SCAN_MAX keys) gets an open-addressing index
   (slot = 1 + offset from base, 0 = empty), so folding duplicates stays linear. */
#define SCAN_MAX 16

typedef struct {
    uint32_t *slots;
    size_t mask;
} kv_index_t;

static size_t kv_index_slot(const kv_index_t *x, const kvstack_t *s, size_t base, bytes_t key) {
    size_t i = (size_t)keyed_hash(key.p, key.len) & x->mask;
    while (x->slots[i] && !same_key(s->items[base + x->slots[i] - 1].key, key))
        i = (i + 1) & x->mask;
    return i;
}

/* (Re)builds the index over the list's keys (all distinct), at most a quarter full. */
static int kv_index_build(kv_index_t *x, const kvstack_t *s, size_t base) {
    size_t n = s->len - base, size = 64;
    if (n >= UINT32_MAX) return NATIVE_NO;
    while (size < 4 * n) size *= 2;
    free(x->slots);
    x->slots = calloc(size, sizeof(uint32_t));
    if (!x->slots) return NATIVE_NOMEM;
    x->mask = size - 1;
    for (size_t i = base; i < s->len; i++)
        x->slots[kv_index_slot(x, s, base, s->items[i].key)] = (uint32_t)(i - base + 1);
    return OK;
}

/* Adds one entry to the list, or folds it into an earlier one with its key. */
static int kv_add(kvstack_t *s, size_t base, kv_index_t *x, kv_t kv) {
    kv_t *kept = NULL;
    if (x->slots) {
        size_t slot = kv_index_slot(x, s, base, kv.key);
        if (x->slots[slot]) kept = &s->items[base + x->slots[slot] - 1];
    } else {
        for (size_t i = base; i < s->len && !kept; i++)
            if (same_key(s->items[i].key, kv.key)) kept = &s->items[i];
    }
    if (kept) {
        if (kept->has_value) TRY(validate_value(kept->value, 0));
        kept->value = kv.value;
        kept->parsed = kv.parsed;
        kept->has_value = kv.has_value;
        return OK;
    }
    TRY(kv_push(s, kv));
    size_t n = s->len - base;
    if (x->slots ? 2 * n > x->mask + 1 : n > SCAN_MAX) return kv_index_build(x, s, base);
    if (x->slots) x->slots[kv_index_slot(x, s, base, kv.key)] = (uint32_t)n;
    return OK;
}

/* Pushes the KeyValue entries (field `number` of `msg`) onto the stack and folds
   duplicates. */
static int push_kvs(kvstack_t *s, bytes_t msg, uint32_t number) {
    size_t base = s->len;
    kv_index_t index = {NULL, 0};
    reader_t r = {msg.p, msg.p + msg.len};
    bytes_t entry;
    int rc;
    while ((rc = next_bytes_of(&r, number, &entry)) == 1) {
        kv_t kv;
        rc = parse_keyvalue(entry, &kv);
        kv.parsed.type = V_NONE;
        if (rc == OK && kv.has_value) rc = parse_value(kv.value, &kv.parsed);
        if (rc == OK) rc = kv_add(s, base, &index, kv);
        if (rc != OK) break;
    }
    free(index.slots);
    return rc;
}

/* dict.get(key): the value, or V_NONE. */
static int kv_get(const kvstack_t *s, size_t base, size_t end, const char *key, size_t klen,
                  value_t *v) {
    v->type = V_NONE;
    for (size_t i = base; i < end; i++) {
        const kv_t *kv = &s->items[i];
        if (kv->key.len == klen && memcmp(kv->key.p, key, klen) == 0) {
            *v = kv->parsed;
            return OK;
        }
    }
    return OK;
}

/* ---- JSON ------------------------------------------------------------------------------ */

/* The one canonical JSON text (docs/architecture.md, "Numbers"): what
   json.dumps(separators=(",", ":"), ensure_ascii=False) writes, a float as Python's
   repr() spells it (shortest round-trip digits; exponent form below 1e-4 and from 1e16,
   as "1e-05", "1e+16"). Attributes, events and links are JSON documents, so a non-finite
   float is null there (JSON_STRICT); a text column holding a non-string value keeps
   NaN/Infinity as json.dumps spells them (JSON_PYTHON). The Python reference
   (ingest/frame_builder.py) writes the same, whatever JSON library is installed. */
enum { JSON_STRICT, JSON_PYTHON };

/* Whether any of the 8 bytes is a control character, '"' or '\\'. */
static inline int needs_escape(uint64_t w) {
    uint64_t quote = w ^ (ONES * '"'), backslash = w ^ (ONES * '\\');
    return ((((w - ONES * 0x20) & ~w) | ((quote - ONES) & ~quote) |
            ((backslash - ONES) & ~backslash)) & HIGHS) != 0;
}

/* A JSON string literal, checking on the way that the text is UTF-8 (as protobuf
   requires): one pass, eight bytes at a time while there is nothing to escape. */
static int json_string(buf_t *out, const uint8_t *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    MEM(buf_reserve(out, 6 * n + 2)); /* the worst case: every byte a \u00XX escape */
    char *o = out->p + out->len;
    *o++ = '"';
    size_t start = 0, i = 0;
    while (i < n) {
        while (i + 8 <= n) {
            uint64_t w = load8(s + i);
            if ((w & HIGHS) || needs_escape(w)) break;
            i += 8;
        }
        if (i >= n) break;
        uint8_t c = s[i];
        if (c >= 0x80) {
            size_t len = utf8_sequence(s, i, n);
            if (!len) return NATIVE_NO;
            i += len;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        memcpy(o, s + start, i - start);
        o += i - start;
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
        start = ++i;
    }
    memcpy(o, s + start, n - start);
    o += n - start;
    *o++ = '"';
    out->len = (size_t)(o - out->p);
    return OK;
}

static int put_uint(buf_t *out, uint64_t v) {
    char tmp[24];
    char *p = tmp + sizeof tmp;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    MEM(buf_put(out, p, (size_t)(tmp + sizeof tmp - p)));
    return OK;
}

static int put_int(buf_t *out, int64_t v) {
    if (v >= 0) return put_uint(out, (uint64_t)v);
    MEM(buf_char(out, '-'));
    return put_uint(out, -(uint64_t)v);
}

/* The shortest digits that read back as `d` (what repr() prints), and
   the decimal exponent of the first digit. A normal double that reads back from 15
   digits reads back from those 15 with trailing zeros dropped, and no shorter string
   does, so three tries suffice; subnormals have fewer digits and are searched fully. */
static void shortest_digits(double d, char *digits, int *ndigits, int *exponent) {
    char tmp[40];
    for (int precision = d < DBL_MIN ? 0 : 14; precision <= 16; precision++) {
        snprintf(tmp, sizeof tmp, "%.*e", precision, d);
        if (strtod(tmp, NULL) == d || precision == 16) break;
    }
    /* tmp is "d.ddddde[+-]xx" (d >= 0 here). */
    int n = 0;
    const char *p = tmp;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[n++] = *p;
    while (n > 1 && digits[n - 1] == '0') n--;
    digits[n] = 0;
    *ndigits = n;
    *exponent = atoi(p + 1);
}

static int json_double(buf_t *out, double d, int mode) {
    if (isnan(d) || isinf(d)) {
        if (mode == JSON_STRICT) MEM(buf_str(out, "null"));
        else MEM(buf_str(out, isnan(d) ? "NaN" : (d > 0 ? "Infinity" : "-Infinity")));
        return OK;
    }
    if (signbit(d)) MEM(buf_char(out, '-'));
    d = fabs(d);
    if (d == 0) {
        MEM(buf_str(out, "0.0"));
        return OK;
    }
    char digits[24];
    int n, e;
    shortest_digits(d, digits, &n, &e);
    if (e >= -4 && e < 16) {
        if (e < 0) {
            MEM(buf_str(out, "0."));
            for (int k = -1; k > e; k--) MEM(buf_char(out, '0'));
            MEM(buf_put(out, digits, (size_t)n));
        } else if (n <= e + 1) {
            MEM(buf_put(out, digits, (size_t)n));
            for (int k = n; k <= e; k++) MEM(buf_char(out, '0'));
            MEM(buf_str(out, ".0"));
        } else {
            MEM(buf_put(out, digits, (size_t)e + 1));
            MEM(buf_char(out, '.'));
            MEM(buf_put(out, digits + e + 1, (size_t)(n - e - 1)));
        }
        return OK;
    }
    MEM(buf_char(out, digits[0]));
    if (n > 1) {
        MEM(buf_char(out, '.'));
        MEM(buf_put(out, digits + 1, (size_t)n - 1));
    }
    char tmp[12];
    int len = snprintf(tmp, sizeof tmp, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    MEM(buf_put(out, tmp, (size_t)len));
    return OK;
}

static int put_base64(buf_t *out, const uint8_t *s, size_t n) {
    static const char table[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    MEM(buf_reserve(out, 4 * ((n + 2) / 3)));
    char *o = out->p + out->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = table[v >> 18];
        *o++ = table[(v >> 12) & 63];
        *o++ = table[(v >> 6) & 63];
        *o++ = table[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        *o++ = table[v >> 18];
        *o++ = table[(v >> 12) & 63];
        *o++ = i + 1 < n ? table[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    out->len = (size_t)(o - out->p);
    return OK;
}

static int json_kvs(buf_t *out, kvstack_t *s, size_t base, size_t end, int mode, int depth);

static int json_value(buf_t *out, kvstack_t *s, const value_t *v, int mode, int depth) {
    if (depth > MAX_DEPTH) return NATIVE_NO;
    switch (v->type) {
    case V_NONE:
        MEM(buf_str(out, "null"));
        return OK;
    case V_STR:
        return json_string(out, v->bytes.p, v->bytes.len);
    case V_BOOL:
        MEM(buf_str(out, v->i ? "true" : "false"));
        return OK;
    case V_INT:
        return put_int(out, v->i);
    case V_DOUBLE:
        return json_double(out, v->d, mode);
    case V_BYTES:
        MEM(buf_char(out, '"'));
        TRY(put_base64(out, v->bytes.p, v->bytes.len));
        MEM(buf_char(out, '"'));
        return OK;
    case V_ARRAY: {
        reader_t r = {v->bytes.p, v->bytes.p + v->bytes.len};
        bytes_t element;
        int first = 1, found;
        MEM(buf_char(out, '['));
        while ((found = next_bytes_of(&r, 1, &element)) == 1) {
            value_t item;
            TRY(parse_value(element, &item));
            if (!first) MEM(buf_char(out, ','));
            first = 0;
            TRY(json_value(out, s, &item, mode, depth + 2));
        }
        TRY(found);
        MEM(buf_char(out, ']'));
        return OK;
    }
    case V_KVLIST: {
        size_t base = s->len;
        TRY(push_kvs(s, v->bytes, 1));
        int rc = json_kvs(out, s, base, s->len, mode, depth + 3);
        s->len = base;
        return rc;
    }
    }
    return NATIVE_NO;
}

static int json_kvs(buf_t *out, kvstack_t *s, size_t base, size_t end, int mode, int depth) {
    MEM(buf_char(out, '{'));
    for (size_t i = base; i < end; i++) {
        /* Read the entry afresh each time: nested lists may move the stack. */
        kv_t kv = s->items[i];
        if (i > base) MEM(buf_char(out, ','));
        TRY(json_string(out, kv.key.p, kv.key.len));
        MEM(buf_char(out, ':'));
        TRY(json_value(out, s, &kv.parsed, mode, depth));
    }
    MEM(buf_char(out, '}'));
    return OK;
}

static int put_hex(buf_t *out, bytes_t b) {
    static const char hex[] = "0123456789abcdef";
    MEM(buf_reserve(out, 2 * b.len));
    for (size_t i = 0; i < b.len; i++) {
        out->p[out->len++] = hex[b.p[i] >> 4];
        out->p[out->len++] = hex[b.p[i] & 15];
    }
    return OK;
}

/* ---- the semconv tables (from halo_nb.ingest.rules, via configure()) ----------------------- */

typedef struct {
    char *s;
    size_t len;
} name_t;

typedef struct {
    name_t *items;
    size_t len;
} names_t;

/* One kind source: an attribute, and the kind codes its lower-cased values map to. */
typedef struct {
    name_t key;
    names_t values;
    uint8_t *codes;
} kind_source_t;

enum {
    T_MODEL, T_TOKENS_IN, T_TOKENS_OUT, T_TOKENS_TOTAL, T_TOOL_NAME, T_TOOL_ARGS,
    T_TOOL_RESULT, T_INPUT, T_OUTPUT, T_FINISH_REASON, T_TOOL_ARGS_FALLBACK,
    T_TOOL_RESULT_FALLBACK, T_KEY_TABLES
};
static const char *const KEY_TABLE_NAMES[T_KEY_TABLES] = {
    "model", "tokens_in", "tokens_out", "tokens_total", "tool_name", "tool_args",
    "tool_result", "input", "output", "finish_reason", "tool_args_fallback",
    "tool_result_fallback"};

enum {
    N_SERVICE_NAME, N_EXCEPTION_EVENT, N_EXCEPTION_MESSAGE, N_EXCEPTION_TYPE, N_NAMES
};
static const char *const NAME_NAMES[N_NAMES] = {
    "service_name", "exception_event", "exception_message", "exception_type"};

/* Kinds are codes: the index into halo_nb.schema.KINDS, the frame's Enum. */
enum { K_IF_MODEL, K_DEFAULT, K_TOOL, K_CODES };
static const char *const KIND_CODE_NAMES[K_CODES] = {"kind_if_model", "kind_default", "tool_kind"};

static struct {
    int ready;
    uint8_t kind_codes[K_CODES];
    names_t otel_kinds; /* OTLP's SpanKind names, by enum value */
    names_t keys[T_KEY_TABLES];
    name_t names[N_NAMES];
    kind_source_t *kind_sources;
    size_t kind_source_count;
} T;

/* ---- output columns ------------------------------------------------------------------- */

/* Strings, numbers, and Enum codes (the index into halo_nb.schema.KINDS / STATUSES). */
enum { COL_STR, COL_I64, COL_F64, COL_CODE };

enum {
    C_TRACE_ID, C_SPAN_ID, C_PARENT_SPAN_ID, C_NAME, C_KIND, C_START_NS, C_END_NS,
    C_DURATION_MS, C_STATUS, C_STATUS_MESSAGE, C_SERVICE, C_MODEL, C_TOKENS_IN,
    C_TOKENS_OUT, C_TOKENS_TOTAL, C_TOOL_NAME, C_TOOL_ARGS, C_TOOL_RESULT, C_INPUT,
    C_OUTPUT, C_FINISH_REASON, C_ATTRIBUTES, C_EVENTS, C_LINKS, C_OTEL_KIND, C_TRACE_STATE,
    C_SCOPE_NAME, C_SCOPE_VERSION, C_RESOURCE, C_COUNT
};
static const struct {
    const char *name;
    int type;
} COLUMNS[C_COUNT] = {
    {"trace_id", COL_STR}, {"span_id", COL_STR}, {"parent_span_id", COL_STR},
    {"name", COL_STR}, {"kind", COL_CODE}, {"start_ns", COL_I64}, {"end_ns", COL_I64},
    {"duration_ms", COL_F64}, {"status", COL_CODE}, {"status_message", COL_STR},
    {"service", COL_STR}, {"model", COL_STR}, {"tokens_in", COL_I64},
    {"tokens_out", COL_I64}, {"tokens_total", COL_I64}, {"tool_name", COL_STR},
    {"tool_args", COL_STR}, {"tool_result", COL_STR}, {"input", COL_STR},
    {"output", COL_STR}, {"finish_reason", COL_STR}, {"attributes", COL_STR},
    {"events", COL_STR}, {"links", COL_STR}, {"otel_kind", COL_STR},
    {"trace_state", COL_STR}, {"scope_name", COL_STR}, {"scope_version", COL_STR},
    {"resource", COL_STR},
};

/* An Arrow column: values (string bytes, or 8-byte numbers), the end offset of each
   string, and a validity bitmap. */
typedef struct {
    buf_t data, offsets, valid;
    int64_t nulls;
} column_t;

/* The distinct trace ids of a request, in first-seen order (16 bytes each), with an
   open-addressing index over them (slot = 1 + position, 0 = empty). */
typedef struct {
    buf_t ids;
    uint32_t *slots;
    size_t count, mask;
} trace_set_t;

typedef struct {
    column_t cols[C_COUNT];
    int64_t rows;
    kvstack_t kvs;
    buf_t scratch;
    buf_t keys; /* each span id as a big-endian uint64: the store's duplicate key */
    trace_set_t traces;
    buf_t row_traces; /* each span's trace: a uint32 position in traces */
    size_t max_attributes; /* a span with more is rejected (by the reference); 0: no limit */
} decoder_t;

static inline uint64_t load_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

static int trace_set_slot(const trace_set_t *t, const uint8_t *id) {
    size_t i = (size_t)keyed_hash(id, 16) & t->mask;
    while (t->slots[i] && memcmp(t->ids.p + 16 * (t->slots[i] - 1), id, 16) != 0)
        i = (i + 1) & t->mask;
    return (int)i;
}

static int trace_set_add(trace_set_t *t, const uint8_t *id, uint32_t *position) {
    if (2 * (t->count + 1) > (t->slots ? t->mask + 1 : 0)) {
        size_t size = t->slots ? 2 * (t->mask + 1) : 64;
        uint32_t *old = t->slots;
        size_t old_size = old ? t->mask + 1 : 0;
        t->slots = calloc(size, sizeof(uint32_t));
        if (!t->slots) {
            t->slots = old;
            return -1;
        }
        t->mask = size - 1;
        for (size_t i = 0; i < old_size; i++)
            if (old[i]) t->slots[trace_set_slot(t, (const uint8_t *)t->ids.p + 16 * (old[i] - 1))] = old[i];
        free(old);
    }
    int slot = trace_set_slot(t, id);
    if (!t->slots[slot]) {
        if (buf_put(&t->ids, id, 16)) return -1;
        t->slots[slot] = (uint32_t)++t->count;
    }
    *position = t->slots[slot] - 1;
    return 0;
}

static int col_valid_bit(column_t *c, int64_t row, int valid) {
    size_t byte = (size_t)(row >> 3);
    if (byte >= c->valid.len) MEM(buf_char(&c->valid, 0));
    if (valid) c->valid.p[byte] |= (char)(1 << (row & 7));
    else c->nulls++;
    return OK;
}

/* Strings are appended in pieces and closed by str_end (which writes the offset). */
static int str_end(decoder_t *d, int col, int valid) {
    column_t *c = &d->cols[col];
    int64_t end = (int64_t)c->data.len;
    MEM(buf_put(&c->offsets, &end, 8));
    return col_valid_bit(c, d->rows, valid);
}

static int str_put(decoder_t *d, int col, const void *s, size_t n) {
    MEM(buf_put(&d->cols[col].data, s, n));
    return str_end(d, col, 1);
}

static int str_null(decoder_t *d, int col) { return str_end(d, col, 0); }

static int name_put(decoder_t *d, int col, const name_t *name) {
    return str_put(d, col, name->s, name->len);
}

static int code_put(decoder_t *d, int col, uint8_t code) {
    MEM(buf_char(&d->cols[col].data, (char)code));
    return col_valid_bit(&d->cols[col], d->rows, 1);
}

static int i64_put(decoder_t *d, int col, int64_t v, int valid) {
    MEM(buf_put(&d->cols[col].data, &v, 8));
    return col_valid_bit(&d->cols[col], d->rows, valid);
}

static int f64_put(decoder_t *d, int col, double v, int valid) {
    MEM(buf_put(&d->cols[col].data, &v, 8));
    return col_valid_bit(&d->cols[col], d->rows, valid);
}

/* ---- normalisation (frame_builder.SpanFrameBuilder.add, in C) --------------------------------- */

/* semconv.first(attrs, keys). */
static int first_of(decoder_t *d, size_t n, int table, value_t *v) {
    const names_t *keys = &T.keys[table];
    for (size_t k = 0; k < keys->len; k++) {
        TRY(kv_get(&d->kvs, 0, n, keys->items[k].s, keys->items[k].len, v));
        if (v->type != V_NONE) return OK;
    }
    v->type = V_NONE;
    return OK;
}

/* semconv.as_text(value) into a column. */
static int put_text(decoder_t *d, int col, const value_t *v) {
    if (v->type == V_NONE) return str_null(d, col);
    if (v->type == V_STR) return str_put(d, col, v->bytes.p, v->bytes.len);
    if (v->type == V_BYTES) { /* bytes are base64 text, as in OTLP JSON */
        TRY(put_base64(&d->cols[col].data, v->bytes.p, v->bytes.len));
        return str_end(d, col, 1);
    }
    TRY(json_value(&d->cols[col].data, &d->kvs, v, JSON_PYTHON, 0));
    return str_end(d, col, 1);
}

/* str(value) for the scalar types; others are left to the reference. */
static int put_str_of(decoder_t *d, int col, const value_t *v) {
    switch (v->type) {
    case V_DOUBLE:
        if (isnan(v->d)) return str_put(d, col, "nan", 3);
        if (isinf(v->d)) return v->d > 0 ? str_put(d, col, "inf", 3) : str_put(d, col, "-inf", 4);
        TRY(json_double(&d->cols[col].data, v->d, JSON_PYTHON));
        return str_end(d, col, 1);
    case V_STR:
        return str_put(d, col, v->bytes.p, v->bytes.len);
    case V_INT:
        TRY(put_int(&d->cols[col].data, v->i));
        return str_end(d, col, 1);
    case V_BOOL:
        return str_put(d, col, v->i ? "True" : "False", v->i ? 4 : 5);
    case V_BYTES:
        TRY(put_base64(&d->cols[col].data, v->bytes.p, v->bytes.len));
        return str_end(d, col, 1);
    default:
        return NATIVE_NO;
    }
}

static int is_py_space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* int(text) for ASCII text, as Python reads it (spaces around, a sign, digits with single
   underscores between them); None when it is not a number or not an int64. */
static int text_as_int(bytes_t text, int64_t *out, int *valid) {
    const uint8_t *p = text.p, *end = text.p + text.len;
    for (const uint8_t *q = p; q < end; q++)
        if (*q & 0x80) return NATIVE_NO; /* Unicode digits and spaces: the reference's */
    while (p < end && is_py_space(*p)) p++;
    while (end > p && is_py_space(end[-1])) end--;
    int negative = 0;
    if (p < end && (*p == '+' || *p == '-')) negative = *p++ == '-';
    uint64_t magnitude = 0, limit = negative ? (UINT64_C(1) << 63) : (UINT64_C(1) << 63) - 1;
    int digits = 0, overflow = 0;
    for (; p < end; p++) {
        if (*p == '_' && digits && p + 1 < end && p[1] >= '0' && p[1] <= '9' && p[-1] != '_') continue;
        if (*p < '0' || *p > '9') return OK; /* ValueError: None */
        digits++;
        if (magnitude > (limit - (uint64_t)(*p - '0')) / 10) overflow = 1;
        else magnitude = magnitude * 10 + (uint64_t)(*p - '0');
    }
    if (!digits || overflow) return OK;
    *out = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    *valid = 1;
    return OK;
}

/* semconv.as_int: ints; numeric text and floats (truncated) when they fit an int64;
   None for the rest. Bytes (base64 text) are left to the reference. */
static int as_int(const value_t *v, int64_t *out, int *valid) {
    *valid = 0;
    switch (v->type) {
    case V_INT:
        *out = v->i;
        *valid = 1;
        return OK;
    case V_STR:
        return text_as_int(v->bytes, out, valid);
    case V_DOUBLE:
        if (v->d >= -9223372036854775808.0 && v->d < 9223372036854775808.0) {
            *out = (int64_t)v->d; /* truncates toward zero, as int() does */
            *valid = 1;
        }
        return OK;
    case V_NONE:
    case V_BOOL:
    case V_ARRAY:
    case V_KVLIST:
        return OK;
    default:
        return NATIVE_NO;
    }
}

static int ascii_lower_eq(bytes_t value, const name_t *name, int *ascii) {
    *ascii = 1;
    for (size_t i = 0; i < value.len; i++)
        if (value.p[i] & 0x80) *ascii = 0;
    if (!*ascii || value.len != name->len) return 0;
    for (size_t i = 0; i < value.len; i++) {
        uint8_t c = value.p[i];
        if (c >= 'A' && c <= 'Z') c += 32;
        if (c != (uint8_t)name->s[i]) return 0;
    }
    return 1;
}

/* semconv.span_kind(attrs), as a kind code. */
static int span_kind(decoder_t *d, size_t n, uint8_t *kind) {
    for (size_t s = 0; s < T.kind_source_count; s++) {
        const kind_source_t *src = &T.kind_sources[s];
        value_t v;
        TRY(kv_get(&d->kvs, 0, n, src->key.s, src->key.len, &v));
        if (v.type != V_STR) continue;
        for (size_t k = 0; k < src->values.len; k++) {
            int ascii;
            if (ascii_lower_eq(v.bytes, &src->values.items[k], &ascii)) {
                *kind = src->codes[k];
                return OK;
            }
            /* str.lower() maps a few non-ASCII letters onto ASCII ones. */
            if (!ascii) return NATIVE_NO;
        }
    }
    value_t model;
    TRY(first_of(d, n, T_MODEL, &model));
    *kind = T.kind_codes[model.type != V_NONE ? K_IF_MODEL : K_DEFAULT];
    return OK;
}

static int names_equal(bytes_t b, const name_t *name) {
    return b.len == name->len && memcmp(b.p, name->s, b.len) == 0;
}

typedef struct {
    bytes_t json;    /* the resource's attributes as JSON */
    value_t service; /* resource.get("service.name") */
    kvstack_t kvs;   /* keeps the service value's sub-messages addressable */
} resource_t;

typedef struct {
    bytes_t name, version;
} scope_t;

/* Events: their JSON, and the first exception event's message (batch._exception_message). */
static int span_events(decoder_t *d, const bytes_t *events, size_t count, value_t *exception) {
    buf_t *out = &d->cols[C_EVENTS].data;
    exception->type = V_NONE;
    MEM(buf_char(out, '['));
    for (size_t e = 0; e < count; e++) {
        reader_t r = {events[e].p, events[e].p + events[e].len};
        field_t f;
        bytes_t name = {(const uint8_t *)"", 0};
        uint64_t time_ns = 0;
        while (r.p < r.end) {
            TRY(next_field(&r, &f));
            if (f.number == 1) {
                EXPECT(f, 1);
                time_ns = f.value;
            } else if (f.number == 2) {
                EXPECT(f, 2);
                name = f.bytes;
            }
        }
        size_t base = d->kvs.len;
        TRY(push_kvs(&d->kvs, events[e], 3));
        if (e) MEM(buf_char(out, ','));
        MEM(buf_str(out, "{\"name\":"));
        TRY(json_string(out, name.p, name.len));
        MEM(buf_str(out, ",\"time_ns\":"));
        TRY(put_uint(out, time_ns));
        MEM(buf_str(out, ",\"attributes\":"));
        TRY(json_kvs(out, &d->kvs, base, d->kvs.len, JSON_STRICT, 0));
        MEM(buf_char(out, '}'));
        if (exception->type == V_NONE && names_equal(name, &T.names[N_EXCEPTION_EVENT])) {
            const name_t *msg = &T.names[N_EXCEPTION_MESSAGE], *type = &T.names[N_EXCEPTION_TYPE];
            TRY(kv_get(&d->kvs, base, d->kvs.len, msg->s, msg->len, exception));
            if (exception->type == V_NONE)
                TRY(kv_get(&d->kvs, base, d->kvs.len, type->s, type->len, exception));
            /* The value's bytes point into the request body, so they outlive the pop. */
        }
        d->kvs.len = base;
    }
    MEM(buf_char(out, ']'));
    return str_end(d, C_EVENTS, 1);
}

static int span_links(decoder_t *d, const bytes_t *links, size_t count) {
    buf_t *out = &d->cols[C_LINKS].data;
    MEM(buf_char(out, '['));
    for (size_t l = 0; l < count; l++) {
        reader_t r = {links[l].p, links[l].p + links[l].len};
        field_t f;
        bytes_t trace = {NULL, 0}, span = {NULL, 0}, state = {(const uint8_t *)"", 0};
        while (r.p < r.end) {
            TRY(next_field(&r, &f));
            if (f.number >= 1 && f.number <= 3) {
                EXPECT(f, 2);
                if (f.number == 1) trace = f.bytes;
                else if (f.number == 2) span = f.bytes;
                else {
                    if (!valid_utf8(f.bytes.p, f.bytes.len)) return NATIVE_NO;
                    state = f.bytes;
                }
            }
        }
        size_t base = d->kvs.len;
        TRY(push_kvs(&d->kvs, links[l], 4));
        if (l) MEM(buf_char(out, ','));
        MEM(buf_str(out, "{\"trace_id\":\""));
        TRY(put_hex(out, trace));
        MEM(buf_str(out, "\",\"span_id\":\""));
        TRY(put_hex(out, span));
        MEM(buf_str(out, "\",\"trace_state\":"));
        TRY(json_string(out, state.p, state.len));
        MEM(buf_str(out, ",\"attributes\":"));
        TRY(json_kvs(out, &d->kvs, base, d->kvs.len, JSON_STRICT, 0));
        MEM(buf_char(out, '}'));
        d->kvs.len = base;
    }
    MEM(buf_char(out, ']'));
    return str_end(d, C_LINKS, 1);
}

typedef struct {
    bytes_t *items;
    size_t len, cap;
} list_t;

static int list_push(list_t *l, bytes_t b) {
    TRY(grow_items((void **)&l->items, l->len, &l->cap, sizeof(bytes_t)));
    l->items[l->len++] = b;
    return OK;
}

static int is_zero(bytes_t b) {
    for (size_t i = 0; i < b.len; i++)
        if (b.p[i]) return 0;
    return 1;
}

static int put_optional(decoder_t *d, int col, bytes_t b) {
    return b.len ? str_put(d, col, b.p, b.len) : str_null(d, col);
}

static int decode_span(decoder_t *d, bytes_t msg, const resource_t *res, const scope_t *scope,
                       list_t *events, list_t *links) {
    reader_t r = {msg.p, msg.p + msg.len};
    field_t f;
    bytes_t trace = {NULL, 0}, span = {NULL, 0}, parent = {NULL, 0};
    bytes_t name = {(const uint8_t *)"", 0}, state = {NULL, 0}, status_msg = {NULL, 0};
    uint64_t start = 0, end = 0, otel_kind = 0;
    int64_t code = 0;
    int statuses = 0;
    size_t attributes = 0;
    events->len = links->len = 0;
    while (r.p < r.end) {
        TRY(next_field(&r, &f));
        switch (f.number) {
        case 1: EXPECT(f, 2); trace = f.bytes; break;
        case 2: EXPECT(f, 2); span = f.bytes; break;
        case 3: EXPECT(f, 2); state = f.bytes; break;
        case 4: EXPECT(f, 2); parent = f.bytes; break;
        case 5: EXPECT(f, 2); name = f.bytes; break;
        case 6: EXPECT(f, 0); otel_kind = f.value; break;
        case 7: EXPECT(f, 1); start = f.value; break;
        case 8: EXPECT(f, 1); end = f.value; break;
        case 9: EXPECT(f, 2); attributes++; break; /* read below */
        case 11: EXPECT(f, 2); TRY(list_push(events, f.bytes)); break;
        case 13: EXPECT(f, 2); TRY(list_push(links, f.bytes)); break;
        case 15: {
            EXPECT(f, 2);
            if (++statuses > 1) return NATIVE_NO;
            reader_t sr = {f.bytes.p, f.bytes.p + f.bytes.len};
            field_t sf;
            while (sr.p < sr.end) {
                TRY(next_field(&sr, &sf));
                if (sf.number == 2) {
                    EXPECT(sf, 2);
                    status_msg = sf.bytes;
                } else if (sf.number == 3) {
                    EXPECT(sf, 0);
                    code = (int32_t)(uint32_t)sf.value;
                }
            }
            break;
        }
        default: break;
        }
    }
    /* Rejected spans (and their partial-success messages) are the reference's. */
    if (trace.len != 16 || span.len != 8 || is_zero(trace) || is_zero(span) ||
        (parent.len && parent.len != 8) || code < 0 || code > 2)
        return NATIVE_NO;
    if (start >> 63 || end >> 63) return NATIVE_NO;
    if (d->max_attributes && attributes > d->max_attributes) return NATIVE_NO;
    if (!valid_utf8(name.p, name.len) || !valid_utf8(state.p, state.len) ||
        !valid_utf8(status_msg.p, status_msg.len))
        return NATIVE_NO;

    kvstack_t *kvs = &d->kvs;
    kvs->len = 0;
    TRY(push_kvs(kvs, msg, 9));
    size_t n = kvs->len;

    TRY(put_hex(&d->cols[C_TRACE_ID].data, trace));
    TRY(str_end(d, C_TRACE_ID, 1));
    TRY(put_hex(&d->cols[C_SPAN_ID].data, span));
    TRY(str_end(d, C_SPAN_ID, 1));
    if (parent.len) {
        TRY(put_hex(&d->cols[C_PARENT_SPAN_ID].data, parent));
        TRY(str_end(d, C_PARENT_SPAN_ID, 1));
    } else {
        TRY(str_null(d, C_PARENT_SPAN_ID));
    }
    TRY(str_put(d, C_NAME, name.p, name.len));

    uint8_t kind;
    TRY(span_kind(d, n, &kind));
    TRY(code_put(d, C_KIND, kind));

    TRY(i64_put(d, C_START_NS, (int64_t)start, 1));
    TRY(i64_put(d, C_END_NS, (int64_t)end, end != 0));
    if (end) {
        int64_t span_ns = (int64_t)end - (int64_t)start;
        /* Exact in a double below 2**53, so one division rounds as Python's does. */
        if (span_ns > (INT64_C(1) << 53) || span_ns < -(INT64_C(1) << 53)) return NATIVE_NO;
        TRY(f64_put(d, C_DURATION_MS, (double)span_ns / 1e6, 1));
    } else {
        TRY(f64_put(d, C_DURATION_MS, 0, 0));
    }
    TRY(code_put(d, C_STATUS, (uint8_t)code)); /* STATUSES is in OTLP code order */

    value_t exception;
    TRY(span_events(d, events->items, events->len, &exception));
    if (status_msg.len) TRY(str_put(d, C_STATUS_MESSAGE, status_msg.p, status_msg.len));
    else if (exception.type != V_NONE) TRY(put_str_of(d, C_STATUS_MESSAGE, &exception));
    else TRY(str_null(d, C_STATUS_MESSAGE));

    /* The resource's service value may be a list or map: write it from its own stack. */
    if (res->service.type == V_NONE || res->service.type == V_STR) {
        TRY(put_text(d, C_SERVICE, &res->service));
    } else {
        TRY(json_value(&d->cols[C_SERVICE].data, (kvstack_t *)&res->kvs, &res->service,
                       JSON_PYTHON, 0));
        TRY(str_end(d, C_SERVICE, 1));
    }

    value_t v;
    TRY(first_of(d, n, T_MODEL, &v));
    TRY(put_text(d, C_MODEL, &v));

    int64_t tin = 0, tout = 0, ttotal = 0;
    int has_in, has_out, has_total;
    TRY(first_of(d, n, T_TOKENS_IN, &v));
    TRY(as_int(&v, &tin, &has_in));
    TRY(first_of(d, n, T_TOKENS_OUT, &v));
    TRY(as_int(&v, &tout, &has_out));
    TRY(first_of(d, n, T_TOKENS_TOTAL, &v));
    TRY(as_int(&v, &ttotal, &has_total));
    if (!has_total && (has_in || has_out)) {
        /* semconv.add_counts: a sum beyond int64 is unknown. */
        has_total = !__builtin_add_overflow(has_in ? tin : 0, has_out ? tout : 0, &ttotal);
    }
    TRY(i64_put(d, C_TOKENS_IN, tin, has_in));
    TRY(i64_put(d, C_TOKENS_OUT, tout, has_out));
    TRY(i64_put(d, C_TOKENS_TOTAL, ttotal, has_total));

    /* rules.py: a tool span without the tool keys takes its span name and the fallbacks. */
    int is_tool = kind == T.kind_codes[K_TOOL];
    TRY(first_of(d, n, T_TOOL_NAME, &v));
    if (v.type == V_NONE && is_tool) TRY(str_put(d, C_TOOL_NAME, name.p, name.len));
    else TRY(put_text(d, C_TOOL_NAME, &v));
    TRY(first_of(d, n, T_TOOL_ARGS, &v));
    if (v.type == V_NONE && is_tool) TRY(first_of(d, n, T_TOOL_ARGS_FALLBACK, &v));
    TRY(put_text(d, C_TOOL_ARGS, &v));
    TRY(first_of(d, n, T_TOOL_RESULT, &v));
    if (v.type == V_NONE && is_tool) TRY(first_of(d, n, T_TOOL_RESULT_FALLBACK, &v));
    TRY(put_text(d, C_TOOL_RESULT, &v));
    TRY(first_of(d, n, T_INPUT, &v));
    TRY(put_text(d, C_INPUT, &v));
    TRY(first_of(d, n, T_OUTPUT, &v));
    TRY(put_text(d, C_OUTPUT, &v));

    /* semconv.finish_reason: the first of a list, as str(). */
    TRY(first_of(d, n, T_FINISH_REASON, &v));
    if (v.type == V_ARRAY) {
        reader_t ar = {v.bytes.p, v.bytes.p + v.bytes.len};
        bytes_t first;
        value_t item = {V_NONE};
        int found = next_bytes_of(&ar, 1, &first);
        if (found < 0) return found;
        if (found) TRY(parse_value(first, &item));
        v = item;
    }
    if (v.type == V_NONE) TRY(str_null(d, C_FINISH_REASON));
    else TRY(put_str_of(d, C_FINISH_REASON, &v));

    TRY(json_kvs(&d->cols[C_ATTRIBUTES].data, kvs, 0, n, JSON_STRICT, 0));
    TRY(str_end(d, C_ATTRIBUTES, 1));
    TRY(span_links(d, links->items, links->len));

    uint32_t k32 = (uint32_t)otel_kind;
    TRY(name_put(d, C_OTEL_KIND,
                 &T.otel_kinds.items[(int32_t)k32 >= 0 && k32 < T.otel_kinds.len ? k32 : 0]));
    TRY(put_optional(d, C_TRACE_STATE, state));
    TRY(put_optional(d, C_SCOPE_NAME, scope->name));
    TRY(put_optional(d, C_SCOPE_VERSION, scope->version));
    TRY(str_put(d, C_RESOURCE, res->json.p, res->json.len));
    uint64_t key = load_be64(span.p);
    MEM(buf_put(&d->keys, &key, 8));
    uint32_t position;
    MEM(trace_set_add(&d->traces, trace.p, &position));
    MEM(buf_put(&d->row_traces, &position, 4));
    d->rows++;
    return OK;
}

static int decode_scope_spans(decoder_t *d, bytes_t msg, const resource_t *res, list_t *spans,
                              list_t *events, list_t *links) {
    reader_t r = {msg.p, msg.p + msg.len};
    field_t f;
    scope_t scope = {{NULL, 0}, {NULL, 0}};
    int scopes = 0;
    spans->len = 0;
    while (r.p < r.end) {
        TRY(next_field(&r, &f));
        if (f.number == 1) {
            EXPECT(f, 2);
            if (++scopes > 1) return NATIVE_NO;
            reader_t sr = {f.bytes.p, f.bytes.p + f.bytes.len};
            field_t sf;
            while (sr.p < sr.end) {
                TRY(next_field(&sr, &sf));
                if (sf.number == 1 || sf.number == 2) {
                    EXPECT(sf, 2);
                    if (!valid_utf8(sf.bytes.p, sf.bytes.len)) return NATIVE_NO;
                    if (sf.number == 1) scope.name = sf.bytes;
                    else scope.version = sf.bytes;
                }
            }
            TRY(validate_kvs(f.bytes, 3, 0)); /* scope attributes: not in the frame */
        } else if (f.number == 2) {
            EXPECT(f, 2);
            TRY(list_push(spans, f.bytes));
        } else if (f.number == 3) { /* schema_url */
            EXPECT(f, 2);
            if (!valid_utf8(f.bytes.p, f.bytes.len)) return NATIVE_NO;
        }
    }
    for (size_t i = 0; i < spans->len; i++)
        TRY(decode_span(d, spans->items[i], res, &scope, events, links));
    return OK;
}

static int decode_resource_spans(decoder_t *d, bytes_t msg, list_t *scopes, list_t *spans,
                                 list_t *events, list_t *links) {
    reader_t r = {msg.p, msg.p + msg.len};
    field_t f;
    bytes_t resource = {(const uint8_t *)"", 0};
    int resources = 0;
    scopes->len = 0;
    while (r.p < r.end) {
        TRY(next_field(&r, &f));
        if (f.number == 1) {
            EXPECT(f, 2);
            if (++resources > 1) return NATIVE_NO;
            resource = f.bytes;
        } else if (f.number == 2) {
            EXPECT(f, 2);
            TRY(list_push(scopes, f.bytes));
        } else if (f.number == 3) { /* schema_url */
            EXPECT(f, 2);
            if (!valid_utf8(f.bytes.p, f.bytes.len)) return NATIVE_NO;
        }
    }
    resource_t res = {{NULL, 0}, {V_NONE}, {NULL, 0, 0}};
    int rc = push_kvs(&res.kvs, resource, 1);
    buf_t *json = &d->scratch;
    json->len = 0;
    if (rc == OK) rc = json_kvs(json, &res.kvs, 0, res.kvs.len, JSON_STRICT, 0);
    if (rc == OK) {
        const name_t *key = &T.names[N_SERVICE_NAME];
        rc = kv_get(&res.kvs, 0, res.kvs.len, key->s, key->len, &res.service);
    }
    res.json.p = (const uint8_t *)json->p;
    res.json.len = json->len;
    for (size_t i = 0; rc == OK && i < scopes->len; i++)
        rc = decode_scope_spans(d, scopes->items[i], &res, spans, events, links);
    free(res.kvs.items);
    return rc;
}

static int decode_request(decoder_t *d, const uint8_t *body, size_t len) {
    reader_t r = {body, body + len};
    field_t f;
    list_t resources = {0}, scopes = {0}, spans = {0}, events = {0}, links = {0};
    int rc = OK;
    while (rc == OK && r.p < r.end) {
        rc = next_field(&r, &f);
        if (rc == OK && f.number == 1) {
            if (f.wire != 2) rc = NATIVE_NO;
            else rc = list_push(&resources, f.bytes);
        }
    }
    for (size_t i = 0; rc == OK && i < resources.len; i++)
        rc = decode_resource_spans(d, resources.items[i], &scopes, &spans, &events, &links);
    free(resources.items);
    free(scopes.items);
    free(spans.items);
    free(events.items);
    free(links.items);
    return rc;
}

static void decoder_free(decoder_t *d) {
    for (int c = 0; c < C_COUNT; c++) {
        buf_free(&d->cols[c].data);
        buf_free(&d->cols[c].offsets);
        buf_free(&d->cols[c].valid);
    }
    free(d->kvs.items);
    buf_free(&d->scratch);
    buf_free(&d->keys);
    buf_free(&d->traces.ids);
    buf_free(&d->row_traces);
    free(d->traces.slots);
}

/* ---- Python interface ------------------------------------------------------------------ */

/* A decoded buffer handed to Python without a copy: it exposes the buffer protocol
   (pyarrow wraps it as is) and frees the memory when the last reference goes. */
typedef struct {
    PyObject_HEAD
    char *p;
    Py_ssize_t len;
} OwnedBuffer;

static int owned_getbuffer(PyObject *self, Py_buffer *view, int flags) {
    OwnedBuffer *b = (OwnedBuffer *)self;
    return PyBuffer_FillInfo(view, self, b->p, b->len, 1, flags);
}

static void owned_dealloc(PyObject *self) {
    free(((OwnedBuffer *)self)->p);
    Py_TYPE(self)->tp_free(self);
}

static PyBufferProcs owned_as_buffer = {owned_getbuffer, NULL};

static PyTypeObject OwnedBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "halo_nb.ingest._wire.Buffer",
    .tp_basicsize = sizeof(OwnedBuffer),
    .tp_dealloc = owned_dealloc,
    .tp_as_buffer = &owned_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Memory the native decoder filled, owned by this object.",
};

/* Moves the buffer's memory into a Python object (the buffer is left empty), trimmed to
   its length: a stored frame keeps text buffers for as long as it lives, so the room a
   buffer grew into would otherwise stay taken. */
static PyObject *bytes_of(buf_t *b) {
    if (!b->p && buf_reserve(b, 1)) return PyErr_NoMemory(); /* never a NULL address */
    if (b->cap - b->len > 4096) {
        char *p = realloc(b->p, b->len ? b->len : 1);
        if (p) {
            b->p = p;
            b->cap = b->len;
        }
    }
    OwnedBuffer *owned = PyObject_New(OwnedBuffer, &OwnedBufferType);
    if (!owned) return NULL;
    owned->p = b->p;
    owned->len = (Py_ssize_t)b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return (PyObject *)owned;
}

/* Arrow string views (Polars' own layout, so it takes them without converting): 16
   bytes a row, the length then either the text (up to 12 bytes) or its first 4 bytes,
   buffer 0 and the offset into it. */
static PyObject *string_views(const column_t *col, int64_t rows) {
    PyObject *views = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(rows * 16));
    if (!views) return NULL;
    uint8_t *v = (uint8_t *)PyBytes_AS_STRING(views);
    memset(v, 0, (size_t)rows * 16);
    const int64_t *ends = (const int64_t *)col->offsets.p;
    int64_t start = 0;
    for (int64_t i = 0; i < rows; i++, v += 16) {
        uint32_t len = (uint32_t)(ends[i] - start), offset = (uint32_t)start;
        memcpy(v, &len, 4);
        if (len <= 12) {
            memcpy(v + 4, col->data.p + start, len);
        } else {
            memcpy(v + 4, col->data.p + start, 4);
            memcpy(v + 12, &offset, 4);
        }
        start = ends[i];
    }
    return views;
}

static PyObject *column_buffers(decoder_t *d, int c) {
    column_t *col = &d->cols[c];
    PyObject *views = COLUMNS[c].type == COL_STR ? string_views(col, d->rows)
                                                 : Py_NewRef(Py_None);
    PyObject *data = views ? bytes_of(&col->data) : NULL; /* after the views read it */
    PyObject *valid = col->nulls ? bytes_of(&col->valid) : Py_NewRef(Py_None);
    if (!data || !views || !valid) {
        Py_XDECREF(data);
        Py_XDECREF(views);
        Py_XDECREF(valid);
        return NULL;
    }
    return Py_BuildValue("(NNN)", data, views, valid);
}

/* The distinct trace ids as lower-case hex strings, in first-seen order. */
static PyObject *trace_ids(const trace_set_t *t) {
    static const char hex[] = "0123456789abcdef";
    PyObject *list = PyList_New((Py_ssize_t)t->count);
    for (size_t i = 0; list && i < t->count; i++) {
        const uint8_t *id = (const uint8_t *)t->ids.p + 16 * i;
        char text[32];
        for (int j = 0; j < 16; j++) {
            text[2 * j] = hex[id[j] >> 4];
            text[2 * j + 1] = hex[id[j] & 15];
        }
        PyObject *s = PyUnicode_FromStringAndSize(text, 32);
        if (!s) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, s);
    }
    return list;
}

PyDoc_STRVAR(decode_doc,
"decode(body, max_attributes=0) -> (rows, [(data, views, validity), ...], keys,\n"
"trace_ids, row_traces) or None\n\n"
"Decodes an ExportTraceServiceRequest into Arrow buffers, one tuple a column in\n"
"COLUMNS order (views: Arrow string views over data, None for other types; validity is\n"
"a bitmap, or None when nothing is null). keys: each span id as a native-endian uint64\n"
"(its big-endian value, int(span_id, 16)); trace_ids: the distinct trace ids, in order;\n"
"row_traces: each span's position in trace_ids, a native-endian uint32.\n"
"None: the reference must decode it (also when a span has more than max_attributes\n"
"attributes, when that is > 0: the reference rejects it).");

static PyObject *wire_decode(PyObject *self, PyObject *args) {
    (void)self;
    if (!T.ready) {
        PyErr_SetString(PyExc_RuntimeError, "halo_nb.ingest._wire.configure() was not called");
        return NULL;
    }
    PyObject *body;
    Py_ssize_t max_attributes = 0;
    if (!PyArg_ParseTuple(args, "O|n:decode", &body, &max_attributes)) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(body, &view, PyBUF_SIMPLE) < 0) return NULL;
    decoder_t *d = calloc(1, sizeof(decoder_t));
    if (!d) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    d->max_attributes = max_attributes > 0 ? (size_t)max_attributes : 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    /* Most of a request ends up in the attributes column: size it once. */
    rc = buf_reserve(&d->cols[C_ATTRIBUTES].data, (size_t)view.len + 4096) ? NATIVE_NOMEM : OK;
    if (rc == OK) rc = decode_request(d, view.buf, (size_t)view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *result = NULL;
    if (rc == NATIVE_NOMEM) {
        PyErr_NoMemory();
    } else if (rc != OK) {
        result = Py_NewRef(Py_None);
    } else {
        PyObject *columns = PyList_New(C_COUNT);
        for (int c = 0; columns && c < C_COUNT; c++) {
            PyObject *col = column_buffers(d, c);
            if (!col) {
                Py_CLEAR(columns);
                break;
            }
            PyList_SET_ITEM(columns, c, col);
        }
        PyObject *keys = columns ? PyBytes_FromStringAndSize(d->keys.p, (Py_ssize_t)d->keys.len)
                                 : NULL;
        PyObject *traces = keys ? trace_ids(&d->traces) : NULL;
        PyObject *row_traces = traces ? PyBytes_FromStringAndSize(
                                            d->row_traces.p, (Py_ssize_t)d->row_traces.len)
                                      : NULL;
        if (row_traces) {
            result = Py_BuildValue("(LNNNN)", (long long)d->rows, columns, keys, traces,
                                   row_traces);
        } else {
            Py_XDECREF(columns);
            Py_XDECREF(keys);
            Py_XDECREF(traces);
        }
    }
    decoder_free(d);
    free(d);
    return result;
}

static int copy_name(PyObject *str, name_t *out) {
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(str, &len);
    if (!s) return -1;
    out->s = malloc((size_t)len + 1);
    if (!out->s) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(out->s, s, (size_t)len + 1);
    out->len = (size_t)len;
    return 0;
}

static int copy_names(PyObject *seq, names_t *out) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of str");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    out->items = calloc((size_t)n + 1, sizeof(name_t));
    out->len = 0;
    for (Py_ssize_t i = 0; out->items && i < n; i++) {
        if (copy_name(PySequence_Fast_GET_ITEM(fast, i), &out->items[i]) < 0) {
            Py_DECREF(fast);
            return -1;
        }
        out->len++;
    }
    Py_DECREF(fast);
    if (!out->items) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int kind_code_of(PyObject *number, uint8_t *out) {
    long code = PyLong_AsLong(number);
    if (code == -1 && PyErr_Occurred()) return -1;
    if (code < 0 || code > 255) {
        PyErr_Format(PyExc_ValueError, "kind code %ld is not 0-255", code);
        return -1;
    }
    *out = (uint8_t)code;
    return 0;
}

static int kind_codes_of(PyObject *seq, uint8_t **out) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of kind codes");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    *out = malloc((size_t)n + 1);
    int rc = *out ? 0 : (PyErr_NoMemory(), -1);
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++)
        rc = kind_code_of(PySequence_Fast_GET_ITEM(fast, i), &(*out)[i]);
    Py_DECREF(fast);
    return rc;
}

PyDoc_STRVAR(configure_doc,
"configure(tables) -> None\n\n"
"Hands over the attribute-name tables (see halo_nb.ingest.otlp._native_tables) and\n"
"hash_key, 16 random bytes keying the decoder's hash tables. Call once, before any decode().");

static PyObject *wire_configure(PyObject *self, PyObject *tables) {
    (void)self;
    if (T.ready) Py_RETURN_NONE; /* the tables are fixed for the life of the process */
    if (!PyDict_Check(tables)) {
        PyErr_SetString(PyExc_TypeError, "configure() takes a dict");
        return NULL;
    }
    for (int k = 0; k < K_CODES; k++) {
        PyObject *code = PyDict_GetItemString(tables, KIND_CODE_NAMES[k]);
        if (!code) return PyErr_Format(PyExc_KeyError, "tables lack %s", KIND_CODE_NAMES[k]);
        if (kind_code_of(code, &T.kind_codes[k]) < 0) return NULL;
    }
    PyObject *otel_kinds = PyDict_GetItemString(tables, "otel_kinds");
    if (!otel_kinds) return PyErr_Format(PyExc_KeyError, "tables lack otel_kinds");
    if (copy_names(otel_kinds, &T.otel_kinds) < 0) return NULL;
    if (!T.otel_kinds.len) return PyErr_Format(PyExc_ValueError, "otel_kinds is empty");
    for (int t = 0; t < T_KEY_TABLES; t++) {
        PyObject *keys = PyDict_GetItemString(tables, KEY_TABLE_NAMES[t]);
        if (!keys) return PyErr_Format(PyExc_KeyError, "tables lack %s", KEY_TABLE_NAMES[t]);
        if (copy_names(keys, &T.keys[t]) < 0) return NULL;
    }
    for (int i = 0; i < N_NAMES; i++) {
        PyObject *name = PyDict_GetItemString(tables, NAME_NAMES[i]);
        if (!name) return PyErr_Format(PyExc_KeyError, "tables lack %s", NAME_NAMES[i]);
        if (copy_name(name, &T.names[i]) < 0) return NULL;
    }
    PyObject *hash_key = PyDict_GetItemString(tables, "hash_key");
    if (!hash_key || !PyBytes_Check(hash_key) || PyBytes_GET_SIZE(hash_key) != 16)
        return PyErr_Format(PyExc_ValueError, "tables lack hash_key (16 bytes)");
    HASH_K0 = load8((const uint8_t *)PyBytes_AS_STRING(hash_key));
    HASH_K1 = load8((const uint8_t *)PyBytes_AS_STRING(hash_key) + 8);
    PyObject *sources = PyDict_GetItemString(tables, "kind_sources");
    if (!sources) return PyErr_Format(PyExc_KeyError, "tables lack kind_sources");
    PyObject *fast = PySequence_Fast(sources, "kind_sources: a sequence of (key, {value: code})");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    T.kind_sources = calloc((size_t)n + 1, sizeof(kind_source_t));
    for (Py_ssize_t i = 0; T.kind_sources && i < n; i++) {
        PyObject *key, *mapping;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "UO!", &key, &PyDict_Type,
                              &mapping) ||
            copy_name(key, &T.kind_sources[i].key) < 0) {
            Py_DECREF(fast);
            return NULL;
        }
        PyObject *values = PyDict_Keys(mapping), *codes = PyDict_Values(mapping);
        int bad = !values || !codes || copy_names(values, &T.kind_sources[i].values) < 0 ||
                  kind_codes_of(codes, &T.kind_sources[i].codes) < 0;
        Py_XDECREF(values);
        Py_XDECREF(codes);
        if (bad) {
            Py_DECREF(fast);
            return NULL;
        }
        T.kind_source_count++;
    }
    Py_DECREF(fast);
    if (!T.kind_sources) return PyErr_NoMemory();
    T.ready = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode", wire_decode, METH_VARARGS, decode_doc},
    {"configure", wire_configure, METH_O, configure_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "halo_nb.ingest._wire",
    "OTLP protobuf trace requests to span-frame columns, natively (see _wire.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wire(void) {
    if (PyType_Ready(&OwnedBufferType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    PyObject *columns = PyTuple_New(C_COUNT);
    if (!columns) {
        Py_DECREF(m);
        return NULL;
    }
    static const char *const TYPES[] = {"str", "i64", "f64", "code"};
    for (int c = 0; c < C_COUNT; c++)
        PyTuple_SET_ITEM(columns, c, Py_BuildValue("(ss)", COLUMNS[c].name, TYPES[COLUMNS[c].type]));
    if (PyModule_AddObject(m, "COLUMNS", columns) < 0) {
        Py_DECREF(columns);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
