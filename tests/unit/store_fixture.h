/*
 * Shared fixture of the test_store_* programs: a temporary directory, a libuv loop, and the store
 * opened on <dir>/ledgermq.db through store.h; a commit runs the loop until its callback ran.
 * Header-only (static inline), like client_fixture.h: each test program is built from its one
 * file (tests/CMakeLists.txt).
 */
#ifndef LMQ_TEST_STORE_FIXTURE_H
#define LMQ_TEST_STORE_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lmq.h"
#include "store/store.h"

/* Loop turns a commit may take before the test fails (each waits for the store thread). */
#define STORE_FIXTURE_COMMIT_TURNS_MAX 1000

struct store_fixture {
    uv_loop_t loop;
    char dir[64];
    char path[96];
    struct store *store; /* NULL until store_fixture_open() */
};

/* cmocka setup: a fresh directory under /tmp and a loop; no store yet. */
static inline int store_fixture_setup(void **state)
{
    struct store_fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    int n = snprintf(f->dir, sizeof(f->dir), "%s", "/tmp/lmq-store-XXXXXX");
    assert_true(n > 0 && (size_t)n < sizeof(f->dir));
    assert_non_null(mkdtemp(f->dir));
    n = snprintf(f->path, sizeof(f->path), "%s/ledgermq.db", f->dir);
    assert_true(n > 0 && (size_t)n < sizeof(f->path));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    *state = f;
    return 0;
}

/* Opens the store on the fixture's path: store_open()'s result (err filled on failure). */
static inline int store_fixture_open(struct store_fixture *f, enum store_sync_mode sync, char *err,
                                     size_t err_len)
{
    assert_non_null(f);
    assert_null(f->store);
    struct store_options opts = {.path = f->path, .sync = sync};
    return store_open(&f->loop, &opts, &f->store, err, err_len);
}

/* Closes the store if open and runs the loop until its handles are gone. */
static inline void store_fixture_close(struct store_fixture *f)
{
    assert_non_null(f);
    if (f->store == NULL)
        return;
    store_close(f->store);
    f->store = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* cmocka teardown: closes the store and the loop, removes the directory. */
static inline int store_fixture_teardown(void **state)
{
    struct store_fixture *f = *state;
    assert_non_null(f);
    store_fixture_close(f);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    int n = snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_true(n > 0 && (size_t)n < sizeof(cmd));
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

struct store_fixture_commit_result {
    int calls;
    int status;
};

static inline void store_fixture_on_commit(void *arg, int status)
{
    struct store_fixture_commit_result *r = arg;
    r->calls++;
    r->status = status;
}

/* Commits the open batch and runs the loop until its callback ran (once): the commit's status. */
static inline int store_fixture_commit(struct store_fixture *f)
{
    assert_non_null(f);
    assert_non_null(f->store);
    struct store_fixture_commit_result r = {0, 1};
    assert_int_equal(store_commit(f->store, store_fixture_on_commit, &r), 0);
    for (int i = 0; i < STORE_FIXTURE_COMMIT_TURNS_MAX && r.calls == 0; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(r.calls, 1);
    return r.status;
}

#endif
