#!/usr/bin/env bash
# A second, legacy broker (Apache Kafka 3.9, KRaft) on 127.0.0.1:19392, for benchmarks
# only: the peer parpulse is compared with, ClickHouse 18.16's Kafka engine (librdkafka
# 0.11), cannot consume from Kafka 4 (KIP-896 removed the protocol versions it speaks).
# Usage: deploy/local/kafka-legacy.sh start|stop|status. Data under .parpulse/legacy-kafka/.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PARPULSE_HOME="${PARPULSE_LEGACY_HOME:-${PARPULSE_HOME:-$here/../../.parpulse}/legacy-kafka}"
export PARPULSE_LOCAL_KAFKA_PORT="${PARPULSE_LEGACY_KAFKA_PORT:-19392}"
export PARPULSE_LOCAL_KAFKA_CONTROLLER_PORT="${PARPULSE_LEGACY_KAFKA_CONTROLLER_PORT:-19393}"
export PARPULSE_LOCAL_KAFKA_HEAP="${PARPULSE_LEGACY_KAFKA_HEAP:-512m}"
export PARPULSE_KAFKA_POM="$here/kafka-legacy/pom.xml"
unset PARPULSE_KAFKA_LIBS
exec "$here/kafka.sh" "$@"
