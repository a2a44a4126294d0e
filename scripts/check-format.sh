#!/usr/bin/env bash
# Fails (exit 1) naming every tracked C file that clang-format (.clang-format) would change.
# `make format` fixes them. Run by .ci/run before the tests, so an unformatted file fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v clang-format >/dev/null 2>&1; then
    echo "check-format: clang-format not found (scripts/install-deps.sh installs it)" >&2
    exit 1
fi

bad=()
while IFS= read -r -d '' f; do
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
        bad+=("$f")
    fi
done < <(git ls-files -z '*.c' '*.h')

if [ "${#bad[@]}" -ne 0 ]; then
    echo "check-format: not formatted (run \`make format\`):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
fi
echo "check-format: all C files formatted"
