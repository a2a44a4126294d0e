#!/usr/bin/env bash
# Writes test certificates into OUTDIR with the openssl command line tool, all ECDSA P-256
# (fast handshakes, supported by every TLS 1.2+ client), valid for 10 years:
#   ca.pem ca.key            test CA (CN=LedgerMQ test CA)
#   server.pem server.key    CN=localhost, SAN IP:127.0.0.1 DNS:localhost, signed by the CA
#   client.pem client.key    CN=alice, clientAuth, signed by the CA
#   rogue.pem rogue.key      CN=mallory, self-signed (a client certificate the CA never issued)
# Keys are written readable by the owner only.
#
# Usage: bash tests/tls/make-certs.sh OUTDIR
set -euo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out="$1"
mkdir -p "$out"
umask 077
days=3650
tmp="$(mktemp -d "${TMPDIR:-/tmp}/lmq-certs.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# CA: self-signed, may sign certificates.
key "$out/ca.key"
openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" -subj "/CN=LedgerMQ test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$out/ca.pem"

# sign NAME CN EXTENSIONS: a CSR for NAME.key, signed by the CA into NAME.pem.
sign() {
    local name="$1" cn="$2" ext="$3"
    key "$out/$name.key"
    openssl req -new -key "$out/$name.key" -subj "/CN=$cn" -out "$tmp/$name.csr"
    printf '%b' "$ext" >"$tmp/$name.ext"
    openssl x509 -req -in "$tmp/$name.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
        -CAcreateserial -CAserial "$tmp/ca.srl" -sha256 -days "$days" \
        -extfile "$tmp/$name.ext" -out "$out/$name.pem" 2>/dev/null
}

leaf="basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
sign server localhost "${leaf}extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
sign client alice "${leaf}extendedKeyUsage=clientAuth\n"

# Rogue client: self-signed, so no server trusting only the CA accepts it.
key "$out/rogue.key"
openssl req -x509 -new -key "$out/rogue.key" -sha256 -days "$days" -subj "/CN=mallory" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature" \
    -addext "extendedKeyUsage=clientAuth" -out "$out/rogue.pem"

# Fail here rather than in a test: the chain must verify for its purpose.
openssl verify -CAfile "$out/ca.pem" -purpose sslserver "$out/server.pem" >/dev/null
openssl verify -CAfile "$out/ca.pem" -purpose sslclient "$out/client.pem" >/dev/null
if openssl verify -CAfile "$out/ca.pem" "$out/rogue.pem" >/dev/null 2>&1; then
    echo "make-certs: rogue.pem verifies against the CA" >&2
    exit 1
fi
chmod 644 "$out"/*.pem
