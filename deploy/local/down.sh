#!/usr/bin/env bash
# Stops every local service deploy/local started (idempotent). Data stays in $PARPULSE_HOME;
# `make clean-data` removes it.
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/kafka.sh" stop
"$here/clickhouse.sh" stop
