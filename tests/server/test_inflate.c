/* Unit tests of request Content-Encoding (src/server/inflate.c): the
   compressed inputs are made here by zlib itself (the reference), the
   expected plain text is the text compressed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "server/inflate.h"

/* zlib's own encoder: gzip (windowBits 31) or the zlib format (15) */
static size_t pack(const char *in, size_t n, int gzip, unsigned char *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, gzip ? 31 : 15, 8, Z_DEFAULT_STRATEGY),
                     Z_OK);
    z.next_in = (unsigned char *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    return len;
}

static void test_roundtrip(void **state)
{
    (void)state;
    const char *text = "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 2], \"datatype\": "
                       "\"FP64\", \"data\": [1.5, 2.5]}]}";
    unsigned char c[512];
    char why[256], *out;
    size_t outn;
    for (int gzip = 0; gzip < 2; gzip++) {
        size_t n = pack(text, strlen(text), gzip, c, sizeof c);
        assert_int_equal(ap__srv_inflate(gzip ? "gzip" : "Deflate", (char *)c, n, 1 << 20, &out,
                                         &outn, why, sizeof why), 0);
        assert_int_equal(outn, strlen(text));
        assert_string_equal(out, text);
        free(out);
        /* the other format's decoder refuses it */
        assert_int_equal(ap__srv_inflate(gzip ? "deflate" : "gzip", (char *)c, n, 1 << 20, &out,
                                         &outn, why, sizeof why), 400);
        /* truncated */
        assert_int_equal(ap__srv_inflate(gzip ? "gzip" : "deflate", (char *)c, n - 3, 1 << 20,
                                         &out, &outn, why, sizeof why), 400);
        /* bytes after the end */
        c[n] = 'x';
        assert_int_equal(ap__srv_inflate(gzip ? "gzip" : "deflate", (char *)c, n + 1, 1 << 20,
                                         &out, &outn, why, sizeof why), 400);
        assert_non_null(strstr(why, "after the end"));
    }
    assert_int_equal(ap__srv_inflate(" identity ", text, 5, 10, &out, &outn, why, sizeof why), 0);
    assert_null(out);
    assert_int_equal(ap__srv_inflate("br", text, 5, 10, &out, &outn, why, sizeof why), 415);
    assert_non_null(strstr(why, "'br'"));
    assert_int_equal(ap__srv_inflate("gzip, deflate", text, 5, 10, &out, &outn, why, sizeof why),
                     415);
}

static void test_limit(void **state)
{
    (void)state;
    /* 16 MiB of zeros: about 16 KB compressed */
    size_t big = 16u << 20;
    char *zeros = calloc(big, 1);
    unsigned char *c = malloc(1 << 20);
    size_t n = pack(zeros, big, 1, c, 1 << 20);
    assert_true(n < 100000);
    char why[256], *out;
    size_t outn;
    assert_int_equal(ap__srv_inflate("gzip", (char *)c, n, 1 << 20, &out, &outn, why, sizeof why),
                     413);
    assert_non_null(strstr(why, "max_body_bytes = 1048576"));
    /* exactly at the limit passes, one byte less does not */
    assert_int_equal(ap__srv_inflate("gzip", (char *)c, n, big, &out, &outn, why, sizeof why), 0);
    assert_int_equal(outn, big);
    assert_memory_equal(out, zeros, big);
    free(out);
    assert_int_equal(ap__srv_inflate("gzip", (char *)c, n, big - 1, &out, &outn, why, sizeof why),
                     413);
    free(c);
    free(zeros);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_roundtrip),
                                       cmocka_unit_test(test_limit)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
