#!/usr/bin/env bash
# Stops every local service deploy/local started (idempotent). Data stays in $PARPULSE_HOME;
# `make clean-data` removes it.
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/kafka.sh" stop
"$here/clickhouse.sh" stop
# The benchmark's legacy broker, if `make bench` left one (it stops it itself).
"$here/kafka-legacy.sh" stop >/dev/null 2>&1 || true
