#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c with libFuzzer + ASan + UBSan and runs each for SECONDS
# seconds on a scratch copy of its seed corpus (tests/fuzz/corpus/<name without fuzz_>/), so
# new corpus entries never land in the repository. Prints one PASS/FAIL line per target and
# exits non-zero when any target fails to build or finds a crash.
#
# Usage (from anywhere): bash tests/fuzz/run.sh SECONDS          (each target SECONDS)
#                        bash tests/fuzz/run.sh --total SECONDS  (SECONDS split evenly, at
#                        least 1 each: the smoke in `make test`, whose length then does not
#                        grow with the number of targets)
set -u

total=0
if [ "${1:-}" = "--total" ]; then
    total=1
    shift
fi
secs="${1:-30}"
case "$secs" in
'' | *[!0-9]*)
    echo "usage: $0 [--total] SECONDS" >&2
    exit 2
    ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 2
out="build-fuzz" # gitignored (/build*/)
mkdir -p "$out"

# Only dependency-free sources: src/core/lmq.c and the src/mqtt module (codec, topics, and the
# subscription tree other targets need). Not src/core/config.c, which needs libinih. A target
# that needs more names it in its source on a line "fuzz-sources: path/a.c path/b.c", and the
# system libraries those need on a line "fuzz-libs: -lhttp_parser -luv".
base_sources=(src/core/lmq.c src/mqtt/*.c)
cflags=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g -O1 -Isrc
    -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wconversion -Wno-sign-conversion)

if [ "$total" -eq 1 ]; then
    targets=(tests/fuzz/fuzz_*.c)
    count="${#targets[@]}"
    secs=$((secs / (count > 0 ? count : 1)))
    [ "$secs" -ge 1 ] || secs=1
    echo "fuzz: ${1}s in all for $count targets: ${secs}s each"
fi

# Generated sources a target may name in its fuzz-sources line (from build-fuzz/): the built-in
# JSON Schema meta-schemas, written the way the CMake build writes them.
if ! cmake -DOUT="$out/schema_meta.c" -DDIR=src/schema/meta -P src/schema/meta/embed.cmake \
    >"$out/schema_meta.log" 2>&1; then
    echo "FAIL: could not generate $out/schema_meta.c (see $out/schema_meta.log)"
    exit 1
fi

scratch_root="$(mktemp -d "${TMPDIR:-/tmp}/lmq-fuzz.XXXXXX")"
trap 'rm -rf "$scratch_root"' EXIT

status=0
found=0
for src in tests/fuzz/fuzz_*.c; do
    [ -e "$src" ] || continue
    found=1
    name="$(basename "$src" .c)"
    corpus_src="tests/fuzz/corpus/${name#fuzz_}"
    bin="$out/$name"
    log="$out/$name.log"

    # shellcheck disable=SC2207 # word splitting of the declared paths is intended
    extra=($(sed -n 's/.*fuzz-sources:\([^*]*\).*/\1/p' "$src"))
    # shellcheck disable=SC2207
    libs=($(sed -n 's/.*fuzz-libs:\([^*]*\).*/\1/p' "$src"))
    sources=("${base_sources[@]}" "${extra[@]}")
    if ! clang "${cflags[@]}" "$src" "${sources[@]}" "${libs[@]}" -o "$bin" \
        >"$out/$name.build.log" 2>&1; then
        echo "FAIL $name: build failed (see $out/$name.build.log)"
        cat "$out/$name.build.log"
        status=1
        continue
    fi

    scratch="$scratch_root/$name"
    mkdir -p "$scratch"
    seeds=0
    if [ -d "$corpus_src" ]; then
        cp -R "$corpus_src/." "$scratch/"
        seeds="$(find "$corpus_src" -type f | wc -l)"
    fi

    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
        "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/$name-" "$scratch" >"$log" 2>&1
    rc=$?
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
    if [ "$rc" -eq 0 ]; then
        echo "PASS $name: ${runs:-?} runs in ${secs}s from $seeds seeds, no crash"
    else
        echo "FAIL $name: exit $rc after ${runs:-?} runs; log $out/$name.log, artifacts $out/$name-*"
        tail -n 60 "$log"
        status=1
    fi
done

if [ "$found" -eq 0 ]; then
    echo "FAIL: no tests/fuzz/fuzz_*.c targets found"
    status=1
fi
exit "$status"
