#!/usr/bin/env bash
# Installs the Debian packages LedgerMQ's build and tests need.
# Idempotent: runs apt-get only when a package is missing.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config
    libuv1-dev libinih-dev libcmocka-dev libssl-dev libsqlite3-dev libjansson-dev libhttp-parser-dev libwslay-dev
    clang libclang-rt-14-dev
    python3 python3-paho-mqtt python3-pytest python3-cryptography
    mosquitto-clients curl openssl
    chromium
)

# Node and npm run the MQTT.js tests (tests/js). A Node from elsewhere (e.g. nodesource, which
# bundles npm) is used as it is: Debian's npm would conflict with it, so Debian's nodejs and
# npm are added only when there is no npm at all.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    PACKAGES+=(nodejs npm)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
