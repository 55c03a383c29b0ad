#!/usr/bin/env bash
# Throwaway TLS material for the local services' TLS listeners (tests and trying the
# security options out; never for a deployment, whose certificates come from its own CA).
# Usage: deploy/local/tls.sh DIR
# Creates in DIR, once (kept when present, so Kafka and ClickHouse can share one CA):
#   ca.pem            the CA certificate: what PARPULSE_KAFKA_CA_FILE / PARPULSE_CLICKHOUSE_CA_FILE name
#   ca.key            its key (only to sign server.pem)
#   server.pem/.key   a server certificate for 127.0.0.1 and localhost, signed by the CA
#   server.p12        the same key and certificate as a PKCS#12 keystore (for Kafka)
#   store.password    the keystore's password (random; files readable by their owner only)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir="${1:-}"
[[ -n "$dir" ]] || die "usage: $0 DIR"
command -v openssl >/dev/null || die "openssl not found: run deploy/local/install.sh (apt-get install openssl)"
mkdir -p "$dir"
chmod 700 "$dir"
umask 077

if [[ -f "$dir/ca.pem" && -f "$dir/server.pem" && -f "$dir/server.p12" && -f "$dir/store.password" ]]; then
  exit 0
fi

log "tls: generating a throwaway CA and a server certificate for 127.0.0.1 in $dir"
ossl() { # runs openssl quietly; its output goes to the log only when it fails
  local out
  out="$(openssl "$@" 2>&1)" || die "tls: openssl $1 failed: $out"
}
ossl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 \
  -subj "/CN=parpulse local test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$dir/ca.key" -out "$dir/ca.pem"
ossl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
  -keyout "$dir/server.key" -out "$dir/server.csr"
cat >"$dir/server.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EXT
ossl x509 -req -sha256 -days 30 -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
  -CAcreateserial -extfile "$dir/server.ext" -out "$dir/server.pem"
rm -f "$dir/server.csr" "$dir/server.ext" "$dir/ca.srl"
# The keystore password is random and goes through a file, never a command line.
openssl rand -hex 16 >"$dir/store.password"
ossl pkcs12 -export -name server -inkey "$dir/server.key" -in "$dir/server.pem" -certfile "$dir/ca.pem" \
  -passout "file:$dir/store.password" -out "$dir/server.p12"
# ca.pem is public; services running as another user may need to read the server files.
chmod 644 "$dir/ca.pem"
