#!/usr/bin/env bash
# Installs what the local services and the build need, from Debian's packages
# (and Maven Central for Kafka, fetched by kafka.sh on first start). Idempotent:
# does nothing when everything is present. Needs root (or sudo) for apt-get.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=()
need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]] || missing+=("$2")
}
need clickhouse-server clickhouse-server
need clickhouse-client clickhouse-client
need prometheus prometheus
need promtool prometheus
need amtool prometheus-alertmanager
need chromium chromium      # headless, for the scorecard test
need curl curl
need java openjdk-17-jre-headless
need mvn maven
need make make            # rdkafka builds its bundled librdkafka with make and a C compiler
need cc gcc
need c++ g++

if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing: ${missing[*]}"
  SUDO=""
  [[ "$(id -u)" == 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian package starts a system-wide server through systemd where systemd runs;
# parpulse runs its own under $PARPULSE_HOME, so that one is not needed.
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
log "prerequisites present"
