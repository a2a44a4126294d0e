#!/usr/bin/env bash
# Long attacks against the real binary (make test-attack): every tests/attack/test_*.py, run by
# Debian's python3 + pytest with the integration helpers on the path.
set -euo pipefail
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
here="$(cd "$(dirname "$0")" && pwd)"
shopt -s nullglob
tests=("$here"/test_*.py)
if [ ${#tests[@]} -eq 0 ]; then
    echo "no attack tests"; exit 1
fi
cd "$here"
LEDGERMQ_BIN="$bin" PYTHONPATH="$here/../integration" \
    /usr/bin/python3 -m pytest -p no:cacheprovider -v "${tests[@]}"
