/* The chain rule (src/ledger/chain.h): first, next, resend, gap, fork; a wrong sender is
 * refused before the chain is looked at (tests/integration/test_identity.py). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ledger/chain.h"

#define L1 "1111111111111111111111111111111111111111111111111111111111111111"
#define L2 "2222222222222222222222222222222222222222222222222222222222222222"
#define L3 "3333333333333333333333333333333333333333333333333333333333333333"

static void test_first_envelope_starts_the_chain_with_an_empty_prev(void **state)
{
    (void)state;
    assert_int_equal(ledger_chain_check(0, "", 1, "", L1, NULL), LEDGER_CHAIN_NEXT);
    assert_int_equal(ledger_chain_check(0, "", 1, L3, L1, NULL), LEDGER_CHAIN_FORK);
    assert_int_equal(ledger_chain_check(0, "", 2, L1, L2, NULL), LEDGER_CHAIN_GAP);
}

static void test_next_envelope_names_the_last_link(void **state)
{
    (void)state;
    assert_int_equal(ledger_chain_check(1, L1, 2, L1, L2, NULL), LEDGER_CHAIN_NEXT);
    assert_int_equal(ledger_chain_check(1, L1, 2, L3, L2, NULL), LEDGER_CHAIN_FORK);
    assert_int_equal(ledger_chain_check(1, L1, 2, "", L2, NULL), LEDGER_CHAIN_FORK);
}

static void test_resend_is_the_accepted_link_at_that_seq(void **state)
{
    (void)state;
    assert_int_equal(ledger_chain_check(2, L2, 2, L1, L2, L2), LEDGER_CHAIN_RESEND);
    assert_int_equal(ledger_chain_check(2, L2, 1, "", L1, L1), LEDGER_CHAIN_RESEND);
    assert_string_equal(ledger_chain_verdict_name(LEDGER_CHAIN_RESEND), "resend");
}

static void test_other_envelope_at_an_accepted_seq_is_a_fork(void **state)
{
    (void)state;
    assert_int_equal(ledger_chain_check(2, L2, 2, L1, L3, L2), LEDGER_CHAIN_FORK);
    assert_int_equal(ledger_chain_check(2, L2, 1, "", L3, L1), LEDGER_CHAIN_FORK);
    /* Not found where it should be: never taken for a resend. */
    assert_int_equal(ledger_chain_check(2, L2, 1, "", L1, NULL), LEDGER_CHAIN_FORK);
}

static void test_gap_is_any_seq_beyond_the_next(void **state)
{
    (void)state;
    assert_int_equal(ledger_chain_check(2, L2, 4, L3, L1, NULL), LEDGER_CHAIN_GAP);
    assert_int_equal(ledger_chain_check(2, L2, UINT64_C(1) << 53, L3, L1, NULL), LEDGER_CHAIN_GAP);
    assert_string_equal(ledger_chain_verdict_name(LEDGER_CHAIN_GAP), "gap");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_envelope_starts_the_chain_with_an_empty_prev),
        cmocka_unit_test(test_next_envelope_names_the_last_link),
        cmocka_unit_test(test_resend_is_the_accepted_link_at_that_seq),
        cmocka_unit_test(test_other_envelope_at_an_accepted_seq_is_a_fork),
        cmocka_unit_test(test_gap_is_any_seq_beyond_the_next),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
