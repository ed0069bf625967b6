/*
 * ap_parse_timestamp. Expected epoch seconds come from GNU date
 * (`date -u -d 2004-08-19T13:45:00Z +%s` = 1092923100, etc.), written here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "alphapulse.h"

static void ok(const char *s, int64_t want_us)
{
    ap_error err = {0};
    int64_t t = 12345;
    int rc = ap_parse_timestamp(s, &t, &err);
    if (rc)
        print_error("'%s': %s\n", s, err.msg);
    assert_int_equal(rc, 0);
    if (t != want_us)
        print_error("'%s': got %lld want %lld\n", s, (long long)t, (long long)want_us);
    assert_true(t == want_us);
}

static void bad(const char *s, const char *needle)
{
    ap_error err = {0};
    int64_t t = 777;
    assert_int_equal(ap_parse_timestamp(s, &t, &err), AP_EFORMAT);
    assert_int_equal(err.code, AP_EFORMAT);
    assert_true(t == 777); /* untouched */
    if (!strstr(err.msg, needle))
        print_error("'%s': message '%s' lacks '%s'\n", s, err.msg, needle);
    assert_non_null(strstr(err.msg, needle));
}

#define S 1000000LL

static void iso_dates_and_times(void **state)
{
    (void)state;
    ok("2004-08-19", 1092873600 * S);
    ok("1985-01-02", 473472000 * S);
    ok("2000-02-29", 951782400 * S);
    ok("1900-03-01", -2203891200LL * S);
    ok("0001-01-01", -62135596800LL * S);
    ok("9999-12-31T23:59:59Z", 253402300799LL * S);
    ok("1969-12-31T23:59:59Z", -1 * S);
    ok("2004-08-19T13:45:00Z", 1092923100 * S);
    ok("2004-08-19T13:45:00", 1092923100 * S);
    ok("2004-08-19 13:45:00", 1092923100 * S);
    ok("2004-08-19T13:45", 1092923100 * S);
    ok("2004-08-19T13:45:00+00:00", 1092923100 * S);
    ok("2004-08-19T15:45:00+02:00", 1092923100 * S);
    ok("2004-08-19T11:15:00-0230", 1092923100 * S);
    ok("2004-08-19T13:45:00.5Z", 1092923100 * S + 500000);
    ok("2004-08-19 13:45:00.123456789", 1092923100 * S + 123456); /* truncated to us */
    ok("  2004-08-19  ", 1092873600 * S);
}

static void epoch_numbers(void **state)
{
    (void)state;
    ok("1700000000", 1700000000 * S);           /* seconds */
    ok("0", 0);
    ok("-86400", -86400 * S);
    ok("1700000000.25", 1700000000 * S + 250000);
    ok("99999999999", 99999999999LL * S);        /* just below 1e11: seconds */
    ok("100000000000", 100000000 * S);           /* 1e11: milliseconds */
    ok("1700000000123", 1700000000 * S + 123000); /* milliseconds */
    ok("1700000000123.5", 1700000000 * S + 123500);
}

static void rejected(void **state)
{
    (void)state;
    bad("", "empty");
    bad("   ", "empty");
    bad("2004-13-01", "out of range");
    bad("2003-02-29", "out of range");
    bad("2004-08-32", "out of range");
    bad("2004-08-19T24:00:00", "out of range");
    bad("2004-08-19T13:60", "out of range");
    bad("2004-08-19T13:45:61", "out of range");
    bad("2004-08-19X13:45", "expected T");
    bad("2004-08-19T13:45:00+25:00", "expected Z");
    bad("2004-08-19T13:45:00ZZ", "expected Z");
    bad("2004-8-19", "bad timestamp");
    bad("abc", "bad timestamp");
    bad("12abc", "bad timestamp");
    bad("1e9", "bad timestamp");
    bad("1700000000.", "bad timestamp");
    bad("9999999999999999", "bad timestamp"); /* 16 digits: absurd */
    bad("2004-08-19T13:45:00.", "fractional");
}

static void formatting(void **state)
{
    (void)state;
    char buf[40];
    assert_string_equal(ap_format_timestamp(1092923100 * S, buf, sizeof buf),
                        "2004-08-19T13:45:00Z");
    assert_string_equal(ap_format_timestamp(-1 * S + 250000, buf, sizeof buf),
                        "1969-12-31T23:59:59.250000Z");
    assert_string_equal(ap_format_timestamp(0, buf, sizeof buf), "1970-01-01T00:00:00Z");
    /* round trip through the parser */
    int64_t t;
    assert_int_equal(ap_parse_timestamp(ap_format_timestamp(-62135596800LL * S + 7, buf,
                                                            sizeof buf), &t, NULL), 0);
    assert_true(t == -62135596800LL * S + 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(iso_dates_and_times),
        cmocka_unit_test(epoch_numbers),
        cmocka_unit_test(rejected),
        cmocka_unit_test(formatting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
