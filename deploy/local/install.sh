#!/usr/bin/env bash
# Installs what the local services and the build need, from Debian's packages
# (and Maven Central for Kafka, fetched by kafka.sh on first start). Idempotent:
# does nothing when everything is present. Needs root (or sudo) for apt-get.
#   install.sh          what `make demo`, `make up` (also `CLUSTER=1`: ZooKeeper) and the build need
#   install.sh --test   that, plus the tools only the tests use (`make test`): Prometheus,
#                       promtool, amtool, headless Chromium, openssl (throwaway certificates),
#                       systemd-analyze (the systemd units), chDB, openpyxl
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=()
need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]] || missing+=("$2")
}
need_lib() { # need_lib PKG-CONFIG-NAME PACKAGE (a C library's development files)
  pkg-config --exists "$1" 2>/dev/null || missing+=("$2")
}
need clickhouse-server clickhouse-server
need clickhouse-client clickhouse-client
need curl curl
need java openjdk-17-jre-headless
need mvn maven
need make make            # rdkafka builds its bundled librdkafka with make and a C compiler
need cc gcc
need c++ g++
need pkg-config pkg-config   # rdkafka's ssl feature: TLS and SASL/SCRAM to Kafka through the system OpenSSL,
need_lib openssl libssl-dev  # which HTTPS to ClickHouse uses too (native-tls)
# ZooKeeper coordinates the local ClickHouse cluster (`make up CLUSTER=1`, deploy/local/cluster.sh):
# a command users run, so a runtime need, not a test-only one. No command on PATH: its jar.
[[ -f /usr/share/java/zookeeper.jar ]] || missing+=(zookeeper)

test_tools=false
[[ "${1:-}" == "--test" ]] && test_tools=true
if $test_tools; then
  need prometheus prometheus
  need promtool prometheus
  need amtool prometheus-alertmanager
  need chromium chromium    # headless, for the scorecard test
  need openssl openssl      # deploy/local/tls.sh: throwaway CA and certificates for the local TLS listeners
  need systemd-analyze systemd  # deploy/systemd/verify.sh checks the units (no running systemd needed)
fi

if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing: ${missing[*]}"
  SUDO=""
  [[ "$(id -u)" == 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# chDB (the ClickHouse 26 engine, in-process, from PyPI) checks that parpulse's SQL runs on
# current ClickHouse too (tests/chdb/compare.py). Its own virtualenv, pinned.
CHDB_VERSION=4.4.0
CHDB_VENV="$PARPULSE_HOME/chdb-venv"
if $test_tools && ! "$CHDB_VENV/bin/python" -c "import chdb, sys; sys.exit(chdb.__version__ != '$CHDB_VERSION')" 2>/dev/null; then
  log "installing chdb $CHDB_VERSION into $CHDB_VENV (once; about 900 MB)"
  rm -rf "$CHDB_VENV"
  if ! python3 -m venv "$CHDB_VENV" 2>/dev/null; then
    SUDO=""; [[ "$(id -u)" == 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$CHDB_VENV"
  fi
  "$CHDB_VENV/bin/pip" install -q "chdb==$CHDB_VERSION" || die "pip install chdb==$CHDB_VERSION failed"
fi

# openpyxl (an Excel reader and writer independent of parpulse's own) opens the XLSX
# reports and builds the test workbooks; same virtualenv, pinned.
OPENPYXL_VERSION=3.1.5
if $test_tools && ! "$CHDB_VENV/bin/python" -c "import openpyxl, sys; sys.exit(openpyxl.__version__ != '$OPENPYXL_VERSION')" 2>/dev/null; then
  log "installing openpyxl $OPENPYXL_VERSION into $CHDB_VENV"
  "$CHDB_VENV/bin/pip" install -q "openpyxl==$OPENPYXL_VERSION" || die "pip install openpyxl==$OPENPYXL_VERSION failed"
fi

# The Debian package starts a system-wide server through systemd where systemd runs;
# parpulse runs its own under $PARPULSE_HOME, so that one is not needed.
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
log "prerequisites present"
