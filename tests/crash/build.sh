#!/bin/bash
# Builds the power-loss shim: build-crash/libpowerloss.so at the top of the
# repository (or in $1). No CMake: the harnesses need only gcc.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/build-crash}"
mkdir -p "$out"
gcc -shared -fPIC -O2 -Wall -Wextra -Werror -std=gnu17 \
    -o "$out/libpowerloss.so.tmp" "$here/powerloss.c" -ldl -lpthread
mv "$out/libpowerloss.so.tmp" "$out/libpowerloss.so"
echo "built $out/libpowerloss.so"
