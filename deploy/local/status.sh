#!/usr/bin/env bash
# Says which local services run, and which external ones parpulse is pointed at.
here="$(dirname "${BASH_SOURCE[0]}")"
[[ -n "${PARPULSE_KAFKA_BROKERS:-}" ]] && echo "kafka: external ($PARPULSE_KAFKA_BROKERS)"
[[ -n "${PARPULSE_CLICKHOUSE_URL:-}" ]] && echo "clickhouse: external (PARPULSE_CLICKHOUSE_URL)"
"$here/kafka.sh" status
"$here/clickhouse.sh" status
