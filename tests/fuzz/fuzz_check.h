/* The fuzz targets' oracle: a property that must hold for every input, checked in every build
 * (LMQ_ASSERT's way: never compiled out), reported with where and what before the abort the
 * fuzzer catches. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz oracle failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
