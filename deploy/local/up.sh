#!/usr/bin/env bash
# Starts the local services parpulse needs (idempotent). A service the user already
# points parpulse at (PARPULSE_KAFKA_BROKERS, PARPULSE_CLICKHOUSE_URL) is not started.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
here="$(dirname "${BASH_SOURCE[0]}")"

"$here/install.sh"
if [[ -n "${PARPULSE_KAFKA_BROKERS:-}" ]]; then
  log "kafka: using PARPULSE_KAFKA_BROKERS=$PARPULSE_KAFKA_BROKERS, starting nothing"
else
  "$here/kafka.sh" start
fi
if [[ -n "${PARPULSE_CLICKHOUSE_URL:-}" ]]; then
  log "clickhouse: using PARPULSE_CLICKHOUSE_URL, starting nothing"
else
  "$here/clickhouse.sh" start
fi
