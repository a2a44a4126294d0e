#!/usr/bin/env bash
# Installs the Debian packages LedgerMQ's build and tests need.
# Idempotent: runs apt-get only when a package is missing.
#
#   install-deps.sh           everything: the build, the tests, the benchmarks' peers
#   install-deps.sh --build   only what building and running the server needs (`make run`)
#
# Debian's mosquitto (the reference broker of tests/integration/test_acl_mosquitto.py, which
# starts its own on a free port) enables and starts a system service on port 1883, where
# `make run` listens: it is installed with no service started (a policy-rc.d that says no, for
# the length of the apt-get only, when there is none already) and its service is left disabled
# and stopped, on every run.
set -euo pipefail

BUILD_ONLY=0
case "${1:-}" in
--build) BUILD_ONLY=1 ;;
"") ;;
*)
    echo "install-deps: unknown option $1 (use --build or nothing)" >&2
    exit 1
    ;;
esac

# The build (CMake also builds the unit tests, hence cmocka; node and npm are added below).
PACKAGES=(
    build-essential cmake pkg-config
    libuv1-dev libinih-dev libcmocka-dev libssl-dev libsqlite3-dev libjansson-dev libhttp-parser-dev libwslay-dev
    libpcre2-dev   # src/schema: JSON Schema "pattern"/"patternProperties" (ECMA-262 via PCRE2)
    libcurl4-openssl-dev   # src/events/webhooks.c: outbound HTTP(S), curl multi on the loop
    libsecp256k1-dev   # src/eth: secp256k1 keys and recoverable signatures (with recovery module)
    zlib1g-dev   # src/jobs/jobs_export.c: export.gzip
)
if [ "$BUILD_ONLY" -eq 0 ]; then
    # The tests: fuzzing (clang), the format check, the integration tests' clients and peers,
    # the browser test.
    PACKAGES+=(
        clang libclang-rt-14-dev clang-format
        python3 python3-paho-mqtt python3-pytest python3-cryptography
        python3-jsonschema   # test_schema_ajv.py: the third engine where ajv is known wrong
        mosquitto mosquitto-clients curl openssl
        systemd man-db groff-base   # test_install.py: systemd-analyze verify, man -l
        chromium
        json-schema-test-suite   # test_schema.c runs its draft 7 suite (2020-12 is in tests/vectors)
    )
fi
# Node and npm bundle GraphiQL at build time (web/graphiql, GET /graphiql) and run the MQTT.js
# tests (tests/js). A Node from elsewhere (e.g. nodesource, which bundles npm) is used as it is:
# Debian's npm would conflict with it, so Debian's nodejs and npm are added only when there is
# no node or no npm at all.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    PACKAGES+=(nodejs npm)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

# Debian's mosquitto service: disabled (systemctl works without a running systemd) and, when
# it runs, stopped through its own init system (which stops that instance only).
mosquitto_service_off() {
    if ! dpkg-query -W -f='${Status}' mosquitto 2>/dev/null | grep -q "install ok installed"; then
        return 0
    fi
    if command -v systemctl >/dev/null 2>&1; then
        if [ "$(systemctl is-enabled mosquitto 2>/dev/null || true)" = "enabled" ]; then
            echo "install-deps: disabling Debian's mosquitto service (port 1883)"
            $SUDO systemctl disable --quiet mosquitto
        fi
        if [ -d /run/systemd/system ] && systemctl is-active --quiet mosquitto; then
            $SUDO systemctl stop mosquitto
        fi
    elif ls /etc/rc[2-5].d/S*mosquitto >/dev/null 2>&1; then
        $SUDO update-rc.d mosquitto disable >/dev/null
    fi
    if [ ! -d /run/systemd/system ] && [ -s /run/mosquitto/mosquitto.pid ] &&
        [ -x /etc/init.d/mosquitto ]; then
        $SUDO /etc/init.d/mosquitto stop >/dev/null || true
    fi
}

if [ "${#missing[@]}" -eq 0 ]; then
    mosquitto_service_off
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
if [[ " ${missing[*]} " == *" mosquitto "* ]] && [ ! -e "$policy" ]; then
    # 101: "action forbidden by policy", so the package's scripts start no service.
    printf '#!/bin/sh\n# LedgerMQ install-deps.sh, during apt-get install only\nexit 101\n' |
        $SUDO tee "$policy" >/dev/null
    $SUDO chmod 0755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
mosquitto_service_off
