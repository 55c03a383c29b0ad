#!/usr/bin/env bash
# Closed-period reports on a province of 2M dossiers a year (docs/BENCHMARKS.md, "Period
# reports"): fills a scratch database with synthetic dossier_state rows (one newest row per
# dossier, 2019, 31 units, 10% still open, 5% with a supplement, apology letters), then times
# `parpulse report --period` for a month, a quarter and the year, each beside the cheapest
# query any reader of the newest rows must run (a GROUP BY over every dossier's newest
# version), so the ratio holds on a noisy machine. Needs `make up` and a release build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
DOSSIERS=${DOSSIERS:-2000000}
DB=${DB:-bench_period}
URL=${PARPULSE_CLICKHOUSE_URL:-http://127.0.0.1:8123}
BIN=${PARPULSE_BIN:-target/release/parpulse}
ch() { curl -sf "$URL/?database=$DB" --data-binary @-; }
seconds() { local start end; start=$(date +%s.%N); "$@" >/dev/null; end=$(date +%s.%N); awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'; }

curl -sf "$URL/" --data "DROP DATABASE IF EXISTS $DB" >/dev/null
PARPULSE_CLICKHOUSE_DATABASE=$DB "$BIN" migrate >/dev/null 2>&1
ch <<SQL
INSERT INTO dossier_state (kafka_partition, agency_code, dossier_id, received_offset, received_day, version, received_at, due_at,
  legal_max_days, processed_at, other_end_at, returned_at, outcome, end_day, deadline_at, last_event_at, received_channel,
  result_postal, apology_at, apology_timing, end_kind, supplement_requested, supplement_received)
SELECT number % 4, arrayElement(['VPUBND','SNV','STP','SKHDT','STC','SCT','SNNPTNT','SGTVT','SXD','STNMT','STTTT','SLDTBXH',
    'SVHTTDL','SKHCN','SGDDT','SYT','TTT','BQLKCN','CAT','BHXH','CTHUE','TPHY','TXMH','VANLAM','VANGIANG','YENMY','KHOAICHAU',
    'ANTHI','KIMDONG','TIENLU','PHUCU'], number % 31 + 1),
  concat('B', toString(number)), toInt64(number), toUInt16(toDate(toDateTime(intDiv(r, 1000000)))), 1,
  r, r + 10 * 86400000000, 10,
  if(number % 10 = 0, 0, r + (number % 13) * 86400000000), 0, 0,
  if(number % 10 = 0, 0, if(number % 13 > 10, 2, 1)),
  if(number % 10 = 0, toUInt16(0), toUInt16(toDate(toDateTime(intDiv(r + (number % 13) * 86400000000, 1000000))))),
  r + 10 * 86400000000, r + (number % 13) * 86400000000, toUInt8(number % 3 + 1), toUInt8(number % 7 = 0),
  if(number % 13 > 10, r + 9 * 86400000000, 0), toUInt8(if(number % 13 > 10, 1, 0)), toUInt8(if(number % 10 = 0, 0, 9)),
  arrayFilter(x -> number % 20 = 1, [r + 86400000000]), arrayFilter(x -> number % 20 = 1, [r + 2 * 86400000000])
FROM (SELECT number, toInt64(1546275600000000 + number * intDiv(365 * 86400000000, $DOSSIERS)) AS r FROM numbers($DOSSIERS))
SQL
echo "dossiers: $(echo 'SELECT count() FROM dossier_state' | ch)"
baseline="SELECT kafka_partition, agency_code, dossier_id, max(version) FROM dossier_state GROUP BY kafka_partition, agency_code, dossier_id FORMAT Null"
echo "| period | parpulse report (s) | newest-row GROUP BY alone (s) | ratio |"
echo "|---|---|---|---|"
for period in 2019-11 2019-Q4 2019; do
  report=$(seconds env PARPULSE_CLICKHOUSE_DATABASE=$DB PARPULSE_LOG=warn "$BIN" report --period "$period" --output "/tmp/bench-period-$period.csv")
  base=$(seconds ch <<<"$baseline")
  echo "| $period | $report | $base | $(awk -v a="$report" -v b="$base" 'BEGIN { printf "%.1f", a / b }') |"
done
